"""Flow control on Redis beyond the conformance group: its keys stay under their queue's
hash tag (one Cluster slot), a queue without limits gets none of them, and the whole
thing (gates, slots, pauses, limits(), why) on a real Redis Cluster of three masters."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

import redis
from conveyor.backends.base import NewJob, Outcome, Settlement
from conveyor.backends.redis import RedisBackend
from conveyor.flow.spec import Limit, Rate
from conveyor.jobs import JobState
from conveyor.serialization import dumps
from tests.conformance.conftest import new_job
from tests.redis.test_redis_cluster import queues_on_every_node
from tests.redis_server import RedisCluster, unique_url

W = "worker-1"
LEASE = 30_000


def gated(queue: str, rkey: str = "", ckey: str = "") -> NewJob:
    return new_job(queue, flow=dumps([["task:t", rkey, ckey]]))


async def test_flow_keys_live_under_their_queue_tag(backend: RedisBackend,
                                                    raw: redis.Redis) -> None:
    prefix = backend.keys.prefix
    await backend.declare_limits([("lim", "task:t", Limit(Rate(5, 1000), 2).to_json())])
    await backend.enqueue([gated("lim", "a", "a"), gated("lim", "b", "b"), new_job("lim"),
                           new_job("plain")])
    claims = (await backend.fetch(["lim", "plain"], 10, W, LEASE)).claims
    assert len(claims) == 4
    await backend.settle([Settlement(c.job.id, c.token, Outcome.RATE_LIMITED,
                                     retry_in_ms=1000) for c in claims
                          if c.token.endswith("+")][:1])
    keys = set(raw.scan_iter(f"{prefix}:*"))
    flow_keys = {k for k in keys if ":flow:" in k}
    assert flow_keys and all(k.startswith(f"{prefix}:{{q:lim}}:flow:") for k in flow_keys)
    assert not any(k.startswith(f"{prefix}:{{q:plain}}:flow") for k in keys)
    assert raw.hget(f"{prefix}:{{q:plain}}:meta", "flow") is None  # no limits: no cost


@pytest.fixture
async def cluster_backend(redis_cluster: RedisCluster) -> AsyncIterator[RedisBackend]:
    b = RedisBackend(unique_url(redis_cluster))
    await b.open()
    try:
        yield b
    finally:
        await b.close()


async def test_flow_control_on_the_cluster(redis_cluster: RedisCluster,
                                           cluster_backend: RedisBackend) -> None:
    backend = cluster_backend
    queues = queues_on_every_node(redis_cluster)
    await backend.declare_limits([(q, "task:t", Limit(concurrency=1).to_json())
                                  for q in queues])
    jobs = {q: [gated(q, "k", "k") for _ in range(2)] for q in queues}
    await backend.enqueue([j for q in queues for j in jobs[q]])
    first = (await backend.fetch(queues, 10, W, LEASE)).claims
    assert sorted(c.job.queue for c in first) == queues  # one slot per queue's limiter
    assert (await backend.fetch(queues, 10, W, LEASE)).claims == []
    use = {i.queue: [(u.key, u.active) for u in i.use] for i in await backend.limits()}
    assert use == {q: [("k", 1)] for q in queues}
    waiting = next(j.id for j in jobs[queues[0]]
                   if j.id not in {c.job.id for c in first})
    assert [r["reason"] for r in await backend.flow_blockers(waiting)] == ["concurrency_full"]

    # a RateLimited settle gives the slot back and pauses the key, on every node
    assert await backend.settle([Settlement(c.job.id, c.token, Outcome.RATE_LIMITED,
                                            retry_in_ms=60_000) for c in first]) == [True] * 3
    assert (await backend.fetch(queues, 10, W, LEASE)).claims == []
    for c in first:
        job = await backend.get(c.job.id)
        assert job is not None and job.state is JobState.WAITING and job.attempt == 0
    assert [r["reason"] for r in await backend.flow_blockers(waiting)] == ["paused"]
    for q in queues:
        await backend.set_limit(q, "task:t", Limit(concurrency=2).to_json())
    infos = await backend.limits()
    assert {i.queue: i.effective for i in infos} == {
        q: {"rate": None, "concurrency": 2} for q in queues}
    assert all(i.use[0].paused_until for i in infos)


async def test_window_logs_and_pauses_of_idle_keys_are_forgotten(backend: RedisBackend,
                                                                 raw: redis.Redis) -> None:
    base = f"{backend.keys.prefix}:{{q:q}}:flow:"
    await backend.declare_limits([("q", "task:t", Limit(Rate(1, 50)).to_json())])
    await backend.enqueue([gated("q", f"tenant{i}") for i in range(20)])
    claims = (await backend.fetch(["q"], 20, W, LEASE)).claims
    assert len(claims) == 20 and raw.scard(base + "windows") == 20
    assert await backend.settle([Settlement(c.job.id, c.token, Outcome.RATE_LIMITED,
                                            retry_in_ms=1) for c in claims]) == [True] * 20
    assert raw.hlen(base + "pauses") == 20
    await asyncio.sleep(0.1)  # every window (50 ms) and pause (1 ms) is over
    assert raw.exists(*(base + f"w:task:t\ntenant{i}" for i in range(20))) == 0
    await backend.limits()
    assert raw.scard(base + "windows") == 0 and raw.hlen(base + "pauses") == 0
