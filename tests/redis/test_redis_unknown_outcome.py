"""An enqueue that reached a frozen Redis (SIGSTOP) and timed out waiting for the answer
says its outcome is unknown (`EnqueueOutcomeUnknownError`, carrying the job ids), never
"not stored": Redis runs it when it thaws. A connection refused is plainly unavailable.
Retrying with the same prepared jobs, or over HTTP with the same Idempotency-Key, ends
with every job stored exactly once: a ledger counts no phantom and no duplicate."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from conveyor import Conveyor
from conveyor.backends.base import JobFilter, NewJob
from conveyor.client import AsyncClient
from conveyor.errors import BackendUnavailableError, EnqueueOutcomeUnknownError
from conveyor.http import HttpSettings, Scope, create_app
from conveyor.testing import adrain
from tests.helpers import ledger_counts
from tests.redis_server import RedisServer, free_port

TOKEN = "unknown-outcome-admin"
FAST = "socket_timeout=0.5"  # a frozen server is noticed in half a second, not ten


def make_app(url: str, ledger: Path) -> Conveyor:
    app = Conveyor(url)

    @app.task(expose=True)
    async def record(n: int) -> int:
        _write(ledger, n)
        return n

    return app


def _write(ledger: Path, n: int) -> None:
    with open(ledger, "a") as out:
        out.write(f"{n}\n")


async def stored_ids(app: Conveyor) -> list[str]:
    page = await app.backend.list_jobs(JobFilter(), limit=1000)
    return [j.id for j in page.jobs]


async def test_a_frozen_redis_makes_the_outcome_unknown_and_a_retry_stores_once(
        fresh_redis: RedisServer, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    app = make_app(f"{fresh_redis.url}?{FAST}", ledger)
    task = app.get_task("record")
    accepted = [h.id for h in await app.aenqueue_many([task.prepare(n) for n in range(3)])]
    unknown: list[NewJob] = []
    fresh_redis.pause()
    try:
        for n in range(3, 6):
            prepared = task.prepare(n)
            with pytest.raises(EnqueueOutcomeUnknownError) as caught:
                await app.aenqueue_many([prepared])
            assert caught.value.job_ids == [prepared.id]
            assert "may or may not have stored" in str(caught.value)
            unknown.append(prepared)
    finally:
        fresh_redis.resume()
    # the frozen calls ran when Redis thawed; the retry finds them instead of storing again
    again = await app.aenqueue_many(unknown)
    assert [h.id for h in again] == [p.id for p in unknown]
    ids = await stored_ids(app)
    assert sorted(ids) == sorted(accepted + [p.id for p in unknown])  # no phantom, no twin
    assert await adrain(app, ["default"]) == 6
    assert ledger_counts(ledger) == {str(n): 1 for n in range(6)}
    await app.aclose()


async def test_a_refused_connection_is_unavailable_not_unknown(tmp_path: Path) -> None:
    app = make_app(f"redis://127.0.0.1:{free_port()}/0?{FAST}", tmp_path / "ledger")
    with pytest.raises(BackendUnavailableError) as caught:
        await app.aenqueue_many([app.get_task("record").prepare(1)])
    assert not isinstance(caught.value, EnqueueOutcomeUnknownError)


def test_the_sync_api_says_unknown_too(fresh_redis: RedisServer, tmp_path: Path) -> None:
    app = make_app(f"{fresh_redis.url}?{FAST}", tmp_path / "ledger")
    task = app.get_task("record")
    task.enqueue(0)  # connected
    prepared = task.prepare(1)
    fresh_redis.pause()
    try:
        with pytest.raises(EnqueueOutcomeUnknownError) as caught:
            app.enqueue_many([prepared])
        assert caught.value.job_ids == [prepared.id]
    finally:
        fresh_redis.resume()
    [handle] = app.enqueue_many([prepared])
    assert handle.id == prepared.id
    assert len(app.run_sync(app.backend.list_jobs, JobFilter()).jobs) == 2
    app.close()


class _Watching(httpx.ASGITransport):
    """The in-process API, noting each status it answers."""

    def __init__(self, app: Any) -> None:
        super().__init__(app)
        self.statuses: list[int] = []
        self.refused = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        self.statuses.append(response.status_code)
        if response.status_code == 503:
            self.refused.set()
        return response


async def test_over_http_the_503_says_unknown_and_the_client_retries_to_one_job(
        fresh_redis: RedisServer, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    app = make_app(f"{fresh_redis.url}?{FAST}", ledger)
    await app.aopen()
    api = create_app(app, HttpSettings(tokens={TOKEN: Scope.ADMIN}))
    transport = _Watching(api)
    headers = {"Authorization": f"Bearer {TOKEN}", "Idempotency-Key": "order-1"}
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as raw:
        fresh_redis.pause()
        try:
            answer = await raw.post("/v1/tasks/record/jobs", json={"kwargs": {"n": 1}},
                                    headers=headers)
        finally:
            fresh_redis.resume()
        assert answer.status_code == 503
        problem = answer.json()
        assert problem["type"].endswith("enqueue-outcome-unknown")
        assert "Idempotency-Key" in problem["title"] + problem["detail"]
        retried = await raw.post("/v1/tasks/record/jobs", json={"kwargs": {"n": 1}},
                                 headers=headers)
        assert retried.status_code == 202
    # the Python client retries a 503 with the key it generated: one job in the end
    transport.statuses.clear()
    transport.refused.clear()
    async with AsyncClient("http://api", token=TOKEN, transport=transport) as client:
        fresh_redis.pause()
        submitted = asyncio.ensure_future(client.submit("record", n=2))
        try:
            await asyncio.wait_for(transport.refused.wait(), 30)
        finally:
            fresh_redis.resume()
        remote = await submitted
    assert transport.statuses[0] == 503 and transport.statuses[-1] == 202
    ids = await stored_ids(app)
    assert len(ids) == 2 and remote.id in ids and retried.json()["id"] in ids
    assert await adrain(app, ["default"]) == 2
    assert ledger_counts(ledger) == {"1": 1, "2": 1}
    await app.aclose()
