"""Redis faults the backend must survive, each on real redis-server processes: a connection
pool under a burst of concurrent calls, replies lost on killed connections, a restart of
redis under a running worker, ``CLIENT KILL`` storms during a run, a frozen server
(SIGSTOP) and ``kill -9`` with AOF on.

Figures (seconds to resume, losses) are printed and recorded as junit properties; run with
``-s`` to see them.
"""

from __future__ import annotations

import asyncio

from conveyor.backends.redis import RedisBackend
from tests.conformance.conftest import new_job
from tests.redis_server import RedisCluster, RedisServer, unique_url


async def opened(url: str) -> RedisBackend:
    b = RedisBackend(url)
    await b.open()
    return b


# -- the connection pool --------------------------------------------------------------------
async def _enqueue_concurrently(url: str, n: int) -> None:
    b = await opened(url)
    try:
        jobs = [new_job(queue=f"q{i % 5}") for i in range(n)]
        results = await asyncio.gather(*(b.enqueue([job]) for job in jobs))
        assert [r[0].job.id for r in results] == [j.id for j in jobs]
        assert all(r[0].created for r in results)
        stored = await asyncio.gather(*(b.get(j.id) for j in jobs))
        assert all(s is not None for s in stored)
    finally:
        await b.close()


async def test_500_concurrent_enqueues_on_one_backend_all_succeed(
        redis_server: RedisServer) -> None:
    # redis-py's default pool fails past 100 connections ("Too many connections")
    await _enqueue_concurrently(unique_url(redis_server), 500)


async def test_500_concurrent_enqueues_on_one_cluster_backend_all_succeed(
        redis_cluster: RedisCluster) -> None:
    # the Cluster client's per-node pools fail past 100 (MaxConnectionsError)
    await _enqueue_concurrently(unique_url(redis_cluster), 500)
