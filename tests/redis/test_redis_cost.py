"""What a job costs Redis, counted with INFO commandstats on a real server.

Counts are exact and machine-independent: round trips per batch and Redis commands per
job. Time depends on the machine, so it only guards against a gross regression; the
figures measured while writing this (a shared 2-core VM, Redis 7.0) are in the backend's
report: about 30 us to enqueue, 35 us to claim and 25 us to settle a job.
"""

from __future__ import annotations

from typing import Any

import redis
from conveyor.backends.base import Outcome, Settlement
from conveyor.backends.redis import RedisBackend
from tests.conformance.conftest import new_job
from tests.redis_server import RedisServer, unique_url

N = 1000
BATCH = 50
TOP_LEVEL = {"evalsha", "eval", "config|resetstat", "info"}
TIMED = ("evalsha", "eval")  # a script's time includes its commands


def _measure(client: redis.Redis) -> tuple[dict[str, int], int, int]:
    """(top-level calls per command, commands run inside scripts, Redis usec spent)."""
    raw = client.info("commandstats")
    calls = {name[len("cmdstat_"):]: int(v["calls"]) for name, v in raw.items()}
    inner = sum(n for name, n in calls.items() if name not in TOP_LEVEL)
    usec = sum(int(raw[f"cmdstat_{name}"]["usec"]) for name in TIMED if name in calls)
    return calls, inner, usec


async def _work_off(b: RedisBackend) -> None:
    """Claim and complete every job of queue "q" as a worker does: settle the previous
    batch and claim the next in one call, BATCH at a time."""
    settle: list[Settlement] = []
    while True:
        fetched = await b.fetch(["q"], BATCH, "w", 30_000, settle)
        settle = [Settlement(c.job.id, c.token, Outcome.COMPLETED, result_json="1")
                  for c in fetched.claims]
        if not settle:
            return


async def test_a_job_costs_one_round_trip_per_batch_and_few_commands(
        redis_server: RedisServer, raw: redis.Redis) -> None:
    b = RedisBackend(unique_url(redis_server))
    await b.open()
    try:
        jobs = [new_job() for _ in range(N)]
        raw.config_resetstat()
        for i in range(0, N, 500):
            await b.enqueue(jobs[i:i + 500])
        calls, inner, enqueue_usec = _measure(raw)
        assert calls["evalsha"] == N // 500  # one script call per batch, nothing else
        assert calls["hsetnx"] == N  # the id index is written by the script
        assert inner / N <= 3.1, f"{inner / N} commands per job (hsetnx, hset, xadd)"

        raw.config_resetstat()
        await _work_off(b)
        calls, inner, work_usec = _measure(raw)
        assert calls["evalsha"] == N // BATCH + 1  # settle previous + claim next: one call
        assert set(calls) <= TOP_LEVEL | {"hmget", "hset", "xadd", "zadd", "zrem", "zpopmin",
                                          "zrangebyscore", "zrange", "time", "hget", "zcard",
                                          "llen", "lpush", "del", "get", "set", "xtrim",
                                          "exists"}  # expiries or keep_last copies to see to?
        assert inner / N <= 6.5, f"{inner / N} commands per job (2 x hmget hset xadd)"
        per_job = (enqueue_usec + work_usec) / N
        assert per_job < 1000, f"{per_job:.0f} us of Redis time per job"
    finally:
        await b.close()


async def test_an_enqueue_is_one_round_trip(redis_server: RedisServer) -> None:
    b = RedisBackend(unique_url(redis_server))
    await b.open()
    trips = 0
    real_run = b._run

    async def counting(batch: Any) -> list[Any]:
        nonlocal trips
        trips += 1
        return await real_run(batch)

    b._run = counting  # type: ignore[method-assign]
    try:
        await b.enqueue([new_job()])
        assert trips == 1
        await b.enqueue([new_job(queue=f"q{i}") for i in range(3)])  # one pipeline
        assert trips == 2
        created = (await b.enqueue([new_job(key="k")]))[0]
        again = (await b.enqueue([new_job(key="k")]))[0]  # a held key: answered in the call
        assert trips == 4 and created.created and not again.created
        assert again.job.id == created.job.id
    finally:
        await b.close()


async def test_a_finished_job_takes_a_few_kilobytes_of_redis_memory(
        redis_server: RedisServer, raw: redis.Redis) -> None:
    """Bounded memory: what 10,000 jobs a day leave behind under the default retention
    (24 h of completed jobs) must stay in megabytes. Measured about 2.5 KB per no-op job:
    its hash, its places in the sets, three events, its id in the index."""
    b = RedisBackend(unique_url(redis_server))
    await b.open()
    try:
        before = int(raw.info("memory")["used_memory"])
        jobs = [new_job() for _ in range(N)]
        for i in range(0, N, 500):
            await b.enqueue(jobs[i:i + 500])
        await _work_off(b)
        per_job = (int(raw.info("memory")["used_memory"]) - before) / N
        assert 1000 < per_job < 4096, f"{per_job:.0f} bytes per completed job"
    finally:
        await b.close()
