"""What the transition scripts store, where the scripts save Redis work: a job that goes
back to the waiting set keeps its place, the leases of a claim all reach the active set,
and a stream written by many events in one script stays capped."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

import redis
from conveyor.backends.base import Outcome, Settlement
from conveyor.backends.redis import RedisBackend
from conveyor.jobs import JobState
from tests.conformance.conftest import new_job
from tests.redis_server import RedisServer, unique_url

W = "worker-1"
LEASE = 30_000


@pytest.fixture
async def backend(redis_server: RedisServer) -> AsyncIterator[RedisBackend]:
    b = RedisBackend(unique_url(redis_server))
    await b.open()
    try:
        yield b
    finally:
        await b.close()


@pytest.fixture
def raw(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis(port=redis_server.port, decode_responses=True)
    try:
        yield client
    finally:
        client.close()


async def _claim_ids(b: RedisBackend, n: int) -> list[str]:
    return [c.job.id for c in (await b.fetch(["q"], n, W, LEASE)).claims]


async def test_a_released_job_is_claimed_again_before_jobs_enqueued_after_it(
        backend: RedisBackend) -> None:
    first, second = new_job(), new_job()
    await backend.enqueue([first, second])
    [claim] = (await backend.fetch(["q"], 1, W, LEASE)).claims
    assert claim.job.id == first.id
    released = [Settlement(first.id, claim.token, Outcome.RELEASED)]
    assert (await backend.fetch(["q"], 1, W, LEASE, released)).claims[0].job.id == first.id
    assert await _claim_ids(backend, 1) == [second.id]


async def test_a_failure_retried_at_once_keeps_the_jobs_priority(
        backend: RedisBackend) -> None:
    urgent, later = new_job(priority=5), new_job(priority=0)
    await backend.enqueue([later, urgent])
    [claim] = (await backend.fetch(["q"], 1, W, LEASE)).claims
    assert claim.job.id == urgent.id
    failed = [Settlement(urgent.id, claim.token, Outcome.FAILED, retry_in_ms=0,
                         error={"type": "E", "message": "again"})]
    fetched = await backend.fetch(["q"], 1, W, LEASE, failed)
    assert fetched.settled == [True]
    assert [(c.job.id, c.job.attempt) for c in fetched.claims] == [(urgent.id, 2)]
    assert await _claim_ids(backend, 1) == [later.id]


async def test_every_lease_of_a_claim_is_in_the_active_set_until_it_is_settled(
        backend: RedisBackend, raw: redis.Redis) -> None:
    jobs = [new_job() for _ in range(60)]
    await backend.enqueue(jobs)
    active = backend.keys.queue("q").keys[3]
    first = (await backend.fetch(["q"], 25, W, LEASE)).claims
    second = (await backend.fetch(["q"], 25, W, LEASE)).claims
    leased = {c.job.id for c in (*first, *second)}
    assert set(raw.zrange(active, 0, -1)) == leased and len(leased) == 50
    done = [Settlement(c.job.id, c.token, Outcome.COMPLETED) for c in first]
    third = await backend.fetch(["q"], 25, W, LEASE, done)
    assert third.settled == [True] * 25
    assert set(raw.zrange(active, 0, -1)) == {c.job.id for c in (*second, *third.claims)}
    for c in first:
        job = await backend.get(c.job.id)
        assert job is not None and job.state is JobState.COMPLETED


async def test_a_stream_written_by_many_events_per_call_stays_capped(
        redis_server: RedisServer, raw: redis.Redis) -> None:
    b = RedisBackend(unique_url(redis_server, events_max_len="1000"))
    await b.open()
    try:
        events = b.keys.queue("q").keys[10]
        await b.enqueue([new_job() for _ in range(900)])  # 900 events in one call
        settle: list[Settlement] = []
        while True:  # 2 more per job, 200 per call
            fetched = await b.fetch(["q"], 100, W, LEASE, settle)
            settle = [Settlement(c.job.id, c.token, Outcome.COMPLETED)
                      for c in fetched.claims]
            if not settle:
                break
        assert 1000 <= raw.xlen(events) <= 1100  # whole nodes of 100 entries go
        ids = [int(i.partition("-")[0]) for i, _ in raw.xrange(events)]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
    finally:
        await b.close()
