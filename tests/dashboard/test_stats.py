"""The charts' numbers, read back from each backend's event stream: the search for the
first event of the last hour, and completed / failed attempts per minute. (`backend` is
the conformance suite's fixture: an empty store of every backend.)"""

from __future__ import annotations

import pytest

from conveyor.backends.base import Backend, Outcome, Settlement
from conveyor.dashboard.stats import MINUTE_MS, Throughput
from conveyor.stream import EventStream
from tests.conformance.conftest import new_job


async def run(backend: Backend, count: int, outcome: Outcome, retry: bool = False) -> None:
    await backend.enqueue([new_job("stats") for _ in range(count)])
    fetched = await backend.fetch(["stats"], count, "w1", 30_000)
    assert len(fetched.claims) == count
    error = {"type": "Boom", "message": "no", "attempt": 1, "traceback": None}
    await backend.settle([
        Settlement(c.job.id, c.token, outcome,
                   result_json="1" if outcome is Outcome.COMPLETED else None,
                   error=error if outcome is Outcome.FAILED else None,
                   retry_in_ms=0 if retry else None)
        for c in fetched.claims])


async def first_id_at(backend: Backend, at_ms: int) -> int:
    return await EventStream(backend).since(at_ms)


async def head(backend: Backend) -> int:
    return await first_id_at(backend, await backend.now() + 1)


async def test_since_splits_the_stream_by_time(backend: Backend) -> None:
    assert await first_id_at(backend, 0) == 0  # an empty stream
    await run(backend, 3, Outcome.COMPLETED)
    middle = await backend.now() + 1
    while await backend.now() <= middle:  # the next events get a later millisecond
        pass
    await run(backend, 2, Outcome.COMPLETED)
    after = await first_id_at(backend, middle)
    later = await backend.events(after=after, limit=100)
    earlier = [e for e in await backend.events(after=0, limit=100) if e.id <= after]
    assert later and all(e.at >= middle for e in later)
    assert earlier and all(e.at < middle for e in earlier)
    assert {e.kind for e in later} >= {"waiting", "active", "completed"}
    assert await backend.events(after=await head(backend), limit=10) == []


async def test_throughput_counts_completions_and_failed_attempts_per_minute(
        backend: Backend) -> None:
    await run(backend, 4, Outcome.COMPLETED)
    await run(backend, 2, Outcome.FAILED)  # final failures
    await run(backend, 1, Outcome.FAILED, retry=True)  # a failed attempt that will retry
    stats = Throughput()
    now = await backend.now()
    await stats.catch_up(backend, await head(backend), now)
    series = stats.series(now)
    assert series["ready"] is True
    assert sum(series["completed"]) == 4
    assert sum(series["failed"]) == 3
    assert series["hour"]["dead"] == 2
    assert series["last5"]["rate"] == pytest.approx(100 * 3 / 7, abs=0.1)
    assert len(series["x"]) == 60 and series["x"][-1] == now // MINUTE_MS * 60
    # catching up again reads only what is new
    await run(backend, 1, Outcome.COMPLETED)
    await stats.catch_up(backend, await head(backend), await backend.now())
    assert sum(stats.series(await backend.now())["completed"]) == 5
