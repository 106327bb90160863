"""What the transition scripts store, where the scripts save Redis work: a job that goes
back to the waiting set keeps its place, the leases of a claim all reach the active set,
and a stream written by many events in one script stays capped."""

from __future__ import annotations

import redis
from conveyor.backends.base import Outcome, Settlement
from conveyor.backends.redis import RedisBackend
from conveyor.jobs import JobState
from tests.conformance.conftest import new_job
from tests.redis_server import RedisServer, unique_url

W = "worker-1"
LEASE = 30_000


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
        ids = [int(str(i).partition("-")[0]) for i, _ in raw.xrange(events) or []]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
    finally:
        await b.close()


async def test_an_enqueue_stores_each_job_where_the_keyspace_says(
        backend: RedisBackend, raw: redis.Redis) -> None:
    low, high = new_job(priority=-3), new_job(priority=7, key="k")
    overdue, later = new_job(run_at_ms=1000), new_job(delay_ms=60_000)
    stored = [e.job for e in await backend.enqueue([low, high, overdue, later])]
    keys = backend.keys.queue("q").keys
    hashes = [raw.hgetall(keys[0] + job.id) for job in stored]
    assert [int(h["seq"]) for h in hashes] == [1, 2, 3, 4]
    assert [h["state"] for h in hashes] == ["waiting", "waiting", "waiting", "delayed"]
    assert [int(h["scheduled_at"]) for h in hashes] == [j.scheduled_at for j in stored]
    assert int(hashes[2]["scheduled_at"]) == 1000
    assert {h["created_at"] for h in hashes} == {str(stored[0].created_at)}
    assert hashes[1]["key"] == "k" and "key" not in hashes[0]
    assert {k for k in hashes[0] if k != "key"} == {
        "id", "queue", "task", "call", "opts", "state", "priority", "max_stalls",
        "created_at", "scheduled_at", "seq", "ev"}

    def member(at: int, seq: int, job_id: str) -> str:
        return f"{at:013d}{seq:012d}:{job_id}"

    created = stored[0].created_at
    assert raw.zrange(keys[7], 0, -1, withscores=True) == [
        (member(created, i + 1, j.id), 0.0) for i, j in enumerate(stored)]
    assert raw.zrange(keys[1], 0, -1, withscores=True) == [
        (member(created, 2, high.id), -7.0), (member(1000, 3, overdue.id), 0.0),
        (member(created, 1, low.id), 3.0)]
    assert raw.zrange(keys[2], 0, -1, withscores=True) == [
        (later.id, float(stored[3].scheduled_at))]
    assert raw.hgetall(keys[8]) == {"k": high.id}
    assert await _claim_ids(backend, 3) == [high.id, overdue.id, low.id]
