"""Redis faults the backend must survive, each on real redis-server processes: a connection
pool under a burst of concurrent calls, replies lost on killed connections, a restart of
redis under a running worker, ``CLIENT KILL`` storms during a run, a frozen server
(SIGSTOP) and ``kill -9`` with AOF on.

Figures (seconds to resume, losses) are printed and recorded as junit properties; run with
``-s`` to see them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from conveyor.backends.base import JobFilter, Outcome, Settlement
from conveyor.backends.redis import RedisBackend
from conveyor.errors import BackendUnavailableError
from conveyor.jobs import JobState
from tests.conformance.conftest import new_job
from tests.redis_server import FaultProxy, RedisCluster, RedisServer, unique_url

W = "worker-1"
LEASE = 30_000
CLAIM = b"\r\nclaim\r\n"  # in a claiming fetch call (not in a peek, nor in a settle)
SETTLE = b"\r\ncompleted\r\n"  # in a call that records a completion


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


# -- replies lost after the command ran -----------------------------------------------------
@pytest.fixture
def proxy(redis_server: RedisServer) -> Iterator[FaultProxy]:
    p = FaultProxy(redis_server.port)
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
async def via_proxy(proxy: FaultProxy) -> AsyncIterator[RedisBackend]:
    b = await opened(unique_url(proxy))
    try:
        yield b
    finally:
        await b.close()


async def active_ids(b: RedisBackend, queue: str = "q") -> set[str]:
    page = await b.list_jobs(JobFilter(queue=queue, states=(JobState.ACTIVE,)), 1000)
    return {j.id for j in page.jobs}


async def test_a_claim_whose_reply_was_lost_is_not_claimed_twice(
        via_proxy: RedisBackend, proxy: FaultProxy) -> None:
    """The retry on a new connection repeats the call: it must hand over the jobs the lost
    call leased, not lease two more and leave the first two to nobody until their lease
    expires (then charged a stall they never had, and failed at max_stalls)."""
    b = via_proxy
    jobs = [new_job() for _ in range(6)]
    await b.enqueue(jobs)
    proxy.lose_reply_to(CLAIM)
    fetched = await b.fetch(["q"], 2, W, LEASE)
    assert proxy.lost == 1
    assert [c.job.id for c in fetched.claims] == [j.id for j in jobs[:2]]
    assert await active_ids(b) == {j.id for j in jobs[:2]}
    done = await b.settle([Settlement(c.job.id, c.token, Outcome.COMPLETED)
                           for c in fetched.claims])
    assert done == [True, True]


async def test_a_claim_lost_past_every_retry_is_handed_over_by_the_next_fetch(
        via_proxy: RedisBackend, proxy: FaultProxy) -> None:
    b = via_proxy
    jobs = [new_job() for _ in range(6)]
    await b.enqueue(jobs)
    proxy.lose_reply_to(CLAIM, times=10)  # more than redis-py's retries
    with pytest.raises(BackendUnavailableError):
        await b.fetch(["q"], 2, W, LEASE)
    proxy.lose_reply_to(CLAIM, times=0)
    fetched = await b.fetch(["q"], 3, W, LEASE)  # the worker's next call: one more slot
    ids = [c.job.id for c in fetched.claims]
    assert ids == [j.id for j in jobs[:3]]
    assert await active_ids(b) == set(ids)
    assert all(c.job.attempt == 1 for c in fetched.claims)


async def test_a_claim_lost_by_a_worker_of_several_queues_is_handed_over(
        via_proxy: RedisBackend, proxy: FaultProxy) -> None:
    b = via_proxy
    jobs = [new_job("q") for _ in range(3)] + [new_job("r") for _ in range(3)]
    await b.enqueue(jobs)
    proxy.lose_reply_to(CLAIM, times=10)
    with pytest.raises(BackendUnavailableError):
        await b.fetch(["q", "r"], 2, W, LEASE)
    proxy.lose_reply_to(CLAIM, times=0)
    fetched = await b.fetch(["q", "r"], 4, W, LEASE)
    ids = {c.job.id for c in fetched.claims}
    assert len(fetched.claims) == 4
    assert await active_ids(b, "q") | await active_ids(b, "r") == ids


async def test_an_outcome_whose_reply_was_lost_does_not_run_the_job_again(
        via_proxy: RedisBackend, proxy: FaultProxy) -> None:
    b = via_proxy
    first, second = new_job(), new_job()
    await b.enqueue([first, second])
    [claim] = (await b.fetch(["q"], 1, W, LEASE)).claims
    proxy.lose_reply_to(SETTLE)  # settle previous + fetch next, as the worker calls it
    fetched = await b.fetch(["q"], 5, W, LEASE,
                            settle=[Settlement(claim.job.id, claim.token, Outcome.COMPLETED)])
    assert proxy.lost == 1
    assert [c.job.id for c in fetched.claims] == [second.id]  # not the first one again
    job = await b.get(first.id)
    assert job is not None and job.state is JobState.COMPLETED and job.attempt == 1
    assert (await b.fetch(["q"], 5, W, LEASE)).claims == []
