"""Schedules on a real Redis Cluster of three masters: schedules whose queues live on
different nodes are saved, fired by racing schedulers exactly once per tick (each firing
one script on its queue's slot: no CROSSSLOT), read back, and deleted."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from conveyor.backends.base import JobFilter
from conveyor.backends.redis import RedisBackend
from conveyor.schedules.runner import Scheduler
from conveyor.schedules.spec import build
from tests.conformance.conftest import new_job
from tests.redis.test_redis_cluster import queues_on_every_node
from tests.redis_server import RedisCluster, redis_cluster, unique_url  # noqa: F401 (fixture)


@pytest.fixture
async def url(redis_cluster: RedisCluster) -> str:  # noqa: F811 (the fixture above)
    return unique_url(redis_cluster)


@pytest.fixture
async def backend(url: str) -> AsyncIterator[RedisBackend]:
    b = RedisBackend(url)
    await b.open()
    try:
        yield b
    finally:
        await b.close()


async def test_schedules_on_every_node_fire_once_per_tick(
        redis_cluster: RedisCluster, url: str, backend: RedisBackend) -> None:  # noqa: F811
    queues = queues_on_every_node(redis_cluster)
    now = await backend.now()
    for queue in queues:
        spec = build(f"every-{queue}", new_job(queue, task="t"), every="200ms",
                     overlap="allow", misfire="all")
        saved = await backend.save_schedule(spec.record("code", spec.first_run_after(now), 0))
        assert saved is not None and saved.queue == queue
    schedulers = [Scheduler() for _ in range(3)]
    backends = [RedisBackend(url) for _ in schedulers]
    for b in backends:
        await b.open()
    try:
        deadline = now + 1500
        while await backend.now() < deadline:
            await asyncio.gather(*(s.round(b) for s, b in zip(schedulers, backends,
                                                                strict=True)))
            await asyncio.sleep(0.02)
    finally:
        for b in backends:
            await b.close()
    jobs = []
    for queue in queues:
        jobs += (await backend.list_jobs(JobFilter(queue=queue), limit=1000)).jobs
    ledger = Counter(j.key for j in jobs)
    assert len(ledger) >= 3 * 5 and max(ledger.values()) == 1
    for record in await backend.schedules():
        assert record.enqueued == sum(1 for j in jobs if j.meta["schedule"] == record.name)
        assert record.last_job_id is not None
        job = await backend.get(record.last_job_id)  # found through the id index
        assert job is not None and job.queue == record.queue
    for queue in queues:
        assert await backend.delete_schedule(f"every-{queue}")
    assert await backend.schedules() == []
