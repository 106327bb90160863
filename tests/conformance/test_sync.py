"""How sync code calls a backend (see the contract's docstring in backends/base.py):
inline on the caller's thread where the backend can, else through the app's portal loop.
Also the stream's head (`event_head`), which the sync tests read too."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from conveyor import Conveyor
from conveyor.backends import ENGINES, backend_for
from conveyor.backends.base import Backend, Outcome, Settlement, is_inline
from conveyor.backends.redis import RedisBackend
from conveyor.backends.sqlite import SqliteBackend
from conveyor.jobs import Event, JobState

from .conftest import new_job

W = "worker-1"
LEASE = 30_000


def needs_inline(backend: Backend) -> None:
    if not backend.capabilities.inline_sync:
        pytest.skip("the backend has no inline sync calls (the portal serves it)")


async def events_after(backend: Backend, after: int, count: int) -> list[Event]:
    """The first `count` events after `after`: a backend may show an event of the
    current millisecond only once it has passed (Redis merges per-queue streams)."""
    deadline = time.monotonic() + 5
    while len(found := await backend.events(after=after)) < count:
        assert time.monotonic() < deadline, f"{len(found)} of {count} events after {after}"
        await asyncio.sleep(0.005)
    return found


async def test_event_head_is_the_newest_event_id(backend: Backend) -> None:
    assert await backend.event_head() == 0
    await backend.enqueue([new_job(), new_job(queue="other")])
    head = await backend.event_head()
    assert head == max(e.id for e in await events_after(backend, 0, 2))
    fetched = await backend.fetch(["q"], 1, W, LEASE)
    [claim] = fetched.claims
    await backend.settle([Settlement(claim.job.id, claim.token, Outcome.COMPLETED, "1")])
    newer = await events_after(backend, head, 2)
    assert [e.kind for e in newer] == ["active", "completed"]
    assert await backend.event_head() == newer[-1].id


async def test_a_reader_from_the_head_sees_only_what_follows(backend: Backend) -> None:
    await backend.enqueue([new_job() for _ in range(5)])
    await events_after(backend, 0, 5)
    head = await backend.event_head()
    assert await backend.events(after=head) == []
    [later] = await backend.enqueue([new_job(queue="late")])
    assert [e.job_id for e in await events_after(backend, head, 1)] == [later.job.id]


def test_every_verb_runs_inline_without_an_event_loop(backend_url: str) -> None:
    backend = backend_for(backend_url)
    needs_inline(backend)
    call = backend.run_inline
    call(backend.open)
    try:
        [stored] = call(backend.enqueue, [new_job()])
        assert call(backend.get, stored.job.id) == stored.job
        fetched = call(backend.fetch, ["q"], 1, W, LEASE)
        [claim] = fetched.claims
        done = Settlement(claim.job.id, claim.token, Outcome.COMPLETED, "7")
        assert call(backend.settle, [done]) == [True]
        job = call(backend.get, stored.job.id)
        assert job is not None and job.state is JobState.COMPLETED and job.result == 7
        events = call(backend.events)
        assert call(backend.event_head) == events[-1].id
        assert [q.name for q in call(backend.queues)] == ["q"]
    finally:
        call(backend.close)


def test_an_inline_call_that_suspends_fails_and_changes_nothing(backend_url: str) -> None:
    class Suspending(type(backend_for(backend_url))):  # type: ignore[misc]
        async def enqueue(self, jobs: Any) -> Any:
            await asyncio.sleep(0)  # a backend bug: I/O awaited on an inline call
            return await super().enqueue(jobs)

    backend = Suspending(backend_url)
    needs_inline(backend)
    backend.run_inline(backend.open)
    try:
        new = new_job()
        with pytest.raises(RuntimeError, match="suspended during an inline"):
            backend.run_inline(backend.enqueue, [new])
        assert backend.run_inline(backend.get, new.id) is None
    finally:
        backend.run_inline(backend.close)


class _Recording:
    """A real backend that notes where the sync API's enqueue ran: the thread, whether
    inline, whether on an event loop. Its URL is the real one behind a scheme prefix."""

    prefix = ""
    calls: list[tuple[str, bool, bool]] = []

    def __init__(self, url: str) -> None:
        super().__init__(url.removeprefix(self.prefix))  # type: ignore[call-arg]
        self.url = url

    async def enqueue(self, jobs: Any) -> Any:
        try:
            asyncio.get_running_loop()
            loop = True
        except RuntimeError:
            loop = False
        self.calls.append((threading.current_thread().name, is_inline(), loop))
        return await super().enqueue(jobs)  # type: ignore[misc]


class InlineSqlite(_Recording, SqliteBackend):
    prefix = "inline+"


class InlineRedis(_Recording, RedisBackend):
    prefix = "inline+"


class PortalSqlite(_Recording, SqliteBackend):
    prefix = "portal+"
    capabilities = replace(SqliteBackend.capabilities, inline_sync=False)


class PortalRedis(_Recording, RedisBackend):
    prefix = "portal+"
    capabilities = replace(RedisBackend.capabilities, inline_sync=False)


@pytest.fixture
def engines() -> Iterator[None]:
    saved = dict(ENGINES)
    ENGINES.update({f"{mode}+{kind}": f"{__name__}:{mode.title()}{kind.title()}"
                    for mode in ("inline", "portal") for kind in ("sqlite", "redis")})
    _Recording.calls.clear()
    try:
        yield
    finally:
        ENGINES.clear()
        ENGINES.update(saved)


@pytest.mark.usefixtures("engines")
@pytest.mark.parametrize("mode", ["inline", "portal"])
def test_the_sync_api_runs_inline_or_falls_back_to_the_portal(backend_url: str,
                                                             mode: str) -> None:
    app = Conveyor(f"{mode}+{backend_url}")

    @app.task
    def noop(n: int) -> None: ...

    try:
        handle = noop.enqueue(n=1)
        assert app.get_job(handle.id).job.kwargs == {"n": 1}
    finally:
        app.close()
    [(thread, inline, loop)] = _Recording.calls
    if mode == "inline":  # on the caller's thread, no event loop anywhere
        assert (thread, inline, loop) == (threading.current_thread().name, True, False)
    else:  # on the portal's loop thread, as a coroutine like any other
        assert (thread, inline, loop) == ("conveyor-portal", False, True)
