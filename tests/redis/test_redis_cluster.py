"""The Redis backend on a real Redis Cluster of three masters: queues whose slots live on
different nodes, every verb without a CROSSSLOT error, and the cross-queue parts (job
lookup by id, merged events, listings, multi-queue claims and wake-ups) still right."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from redis.crc import key_slot

import redis
from conveyor.backends.base import (
    JobFilter,
    LeaseStatus,
    Outcome,
    Retention,
    Settlement,
    WorkerInfo,
)
from conveyor.backends.redis import RedisBackend
from conveyor.jobs import JobState
from tests.conformance.conftest import new_job
from tests.redis_server import RedisCluster, unique_url

W = "worker-1"
LEASE = 30_000


def queues_on_every_node(cluster: RedisCluster) -> list[str]:
    """One queue name per master, so the test spans the whole cluster."""
    client = redis.Redis(port=cluster.nodes[0].port, decode_responses=True)
    try:
        ranges = [(int(r[0]), int(r[1]), int(r[2][1])) for r in client.cluster("SLOTS")]
    finally:
        client.close()

    def node_of(queue: str) -> int:
        slot = key_slot(f"{{q:{queue}}}".encode())
        return next(port for lo, hi, port in ranges if lo <= slot <= hi)

    picked: dict[int, str] = {}
    i = 0
    while len(picked) < 3:
        picked.setdefault(node_of(f"queue{i}"), f"queue{i}")
        i += 1
    return sorted(picked.values())


@pytest.fixture
async def backend(redis_cluster: RedisCluster) -> AsyncIterator[RedisBackend]:
    b = RedisBackend(unique_url(redis_cluster))
    await b.open()
    try:
        yield b
    finally:
        await b.close()


async def test_the_job_lifecycle_spans_the_cluster(redis_cluster: RedisCluster,
                                                   backend: RedisBackend) -> None:
    assert backend.cluster
    a, b, c = queues_on_every_node(redis_cluster)
    low, high, later = new_job(a, priority=1), new_job(b, priority=9), new_job(c, delay_ms=100)
    keyed = new_job(c, key="once")
    stored = await backend.enqueue([low, high, later, keyed, new_job(c, key="once")])
    assert [s.created for s in stored] == [True, True, True, True, False]
    assert (await backend.get(high.id)) is not None

    fetched = await backend.fetch([a, b, c], 2, W, LEASE)
    assert [x.job.id for x in fetched.claims] == [high.id, low.id]  # by priority across nodes
    first, second = fetched.claims
    assert await backend.progress(first.lease, 50)
    assert await backend.log(second.lease, "half way")
    info = WorkerInfo(W, "host", 1, (a, b, c), 4)
    assert await backend.heartbeat(info, [first.lease, second.lease], LEASE) == [
        LeaseStatus.HELD, LeaseStatus.HELD]
    await asyncio.sleep(0.15)
    fetched = await backend.fetch([a, b, c], 4, W, LEASE, settle=[
        Settlement(high.id, first.token, Outcome.COMPLETED, result_json='{"ok": 1}'),
        Settlement(low.id, second.token, Outcome.FAILED, error={"type": "E", "message": "x"}),
    ])
    assert fetched.settled == [True, True]
    assert [x.job.id for x in fetched.claims] == [keyed.id, later.id]  # earliest due first

    done = await backend.get(high.id)
    assert done is not None and done.state is JobState.COMPLETED and done.result == {"ok": 1}
    kinds = [e.kind for e in await backend.events(after=0, job_id=high.id)]
    assert kinds == ["waiting", "active", "progress", "completed"]
    merged = await backend.events(after=0, limit=1000)
    assert [e.id for e in merged] == sorted(e.id for e in merged)
    assert {e.queue for e in merged} == {a, b, c}

    listed = await backend.list_jobs(JobFilter(), limit=3)
    assert len(listed.jobs) == 3 and listed.next_cursor is not None
    rest = await backend.list_jobs(JobFilter(), limit=3, cursor=listed.next_cursor)
    assert len({j.id for j in listed.jobs + rest.jobs}) == 4
    counts = {q.name: q.counts for q in await backend.queues()}
    assert counts[b][JobState.COMPLETED] == 1 and counts[a][JobState.FAILED] == 1
    assert [w.id for w in await backend.workers()] == [W]

    assert await backend.retry(JobFilter(states=(JobState.FAILED,))) == [low.id]
    assert await backend.cancel(JobFilter(queue=a, states=(JobState.WAITING,))) == [low.id]
    removed = await backend.remove(JobFilter(ids=(low.id, high.id, keyed.id)))
    assert sorted(removed) == sorted([low.id, high.id])  # not the running one
    assert await backend.get(low.id) is None and await backend.tombstone(low.id)
    assert await backend.try_lock("maintenance", "me", 5_000)
    assert not await backend.try_lock("maintenance", "you", 5_000)
    assert await backend.rescue() == []
    pruned = await backend.prune(Retention(tombstones_max_age_ms=0))
    assert pruned.tombstones == 2 and await backend.tombstone(low.id) is None


async def test_claims_expire_and_are_rescued_on_the_cluster(redis_cluster: RedisCluster,
                                                            backend: RedisBackend) -> None:
    queues = queues_on_every_node(redis_cluster)
    jobs = [new_job(q) for q in queues]
    await backend.enqueue(jobs)
    claims = (await backend.fetch(queues, 3, "dead-worker", 150)).claims
    assert len(claims) == 3
    await asyncio.sleep(0.25)
    assert sorted(await backend.rescue()) == sorted(j.id for j in jobs)
    again = (await backend.fetch(queues, 3, W, LEASE)).claims
    assert all(x.job.stalls == 1 for x in again)


async def test_wait_for_work_on_several_queues_of_the_cluster(redis_cluster: RedisCluster,
                                                              backend: RedisBackend) -> None:
    queues = queues_on_every_node(redis_cluster)
    waiter = RedisBackend(backend.url)
    try:
        assert (await waiter.fetch(queues, 5, W, LEASE)).claims == []
        for queue in queues:  # a job on any node's queue wakes the waiter
            waiting = asyncio.create_task(waiter.wait_for_work(queues, 10.0))
            await asyncio.sleep(0.05)
            started = time.monotonic()
            await backend.enqueue([new_job(queue)])
            await waiting
            assert time.monotonic() - started < 8.0  # woken by the job, not the 10 s timeout
            assert len((await waiter.fetch(queues, 5, W, LEASE)).claims) == 1
    finally:
        await waiter.close()


async def test_dedup_modes_and_expiry_run_in_each_queues_slot(redis_cluster: RedisCluster,
                                                              backend: RedisBackend) -> None:
    # every key enqueue_dedup.lua and fetch.lua touch carries the queue's hash tag: a key
    # in another slot would be a CROSSSLOT error on Cluster
    from conveyor.dedup import DedupSpec

    a, b, _ = queues_on_every_node(redis_cluster)
    spec = DedupSpec("t:k", "keep_last", replace=True)
    first = new_job(a, dedup=spec, expires_ms=60_000)
    stored = await backend.enqueue([first, new_job(a, dedup=spec), new_job(b, dedup=spec),
                                    new_job(b, expires_ms=50)])
    assert [s.created for s in stored] == [True, False, True, True]
    assert stored[1].job.id == first.id
    [claim] = (await backend.fetch([a], 1, W, LEASE)).claims
    parked = new_job(a, dedup=spec)
    [copy] = await backend.enqueue([parked])
    assert copy.created and copy.job.state is JobState.DELAYED
    assert (await backend.fetch([a], 1, W, LEASE)).claims == []
    fetched = await backend.fetch([a], 1, W, LEASE, settle=[
        Settlement(first.id, claim.token, Outcome.COMPLETED, "1")])
    assert [c.job.id for c in fetched.claims] == [parked.id]
    await asyncio.sleep(0.1)
    assert [c.job.id for c in (await backend.fetch([b], 5, W, LEASE)).claims] == [
        stored[2].job.id]
    expired = await backend.get(stored[3].job.id)
    assert expired is not None and expired.state is JobState.CANCELLED
    assert expired.errors[-1]["reason"] == "expired"
