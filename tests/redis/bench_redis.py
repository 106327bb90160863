"""Bench note: what a job costs Redis, measured on a throw-away redis-server.

    .venv/bin/python -m tests.redis.bench_redis [jobs] [batch]

Prints, per phase: jobs/s seen by one client, Redis time per job from INFO commandstats
(script time includes the commands a script runs), redis-server CPU per job from INFO cpu,
and round trips per job. On a shared 2-core VM (redis-benchmark SET: ~70k ops/s, one Lua
redis.call ~1.5-2 us) it printed about 33 us to enqueue (batches of 500), 37 us to claim
and 24 us to settle (batches of 50), one round trip per batch.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

import redis
from conveyor.backends.base import NewJob, Outcome, Settlement
from conveyor.backends.redis import RedisBackend
from conveyor.ids import new_job_id
from tests.redis_server import RedisServer, unique_url

SCRIPTED = ("evalsha", "eval", "hsetnx", "sadd")  # what the backend sends itself


class Meter:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.cpu = 0.0
        self.started = 0.0

    def _cpu(self) -> float:
        info = self.client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    def start(self) -> None:
        self.client.config_resetstat()
        self.cpu = self._cpu()
        self.started = time.perf_counter()

    def stop(self, jobs: int, what: str) -> None:
        elapsed = time.perf_counter() - self.started
        cpu = self._cpu() - self.cpu
        stats = {k[len("cmdstat_"):]: v for k, v in self.client.info("commandstats").items()}
        usec = sum(int(stats[name]["usec"]) for name in SCRIPTED if name in stats)
        trips = sum(int(stats[name]["calls"]) for name in ("evalsha", "eval") if name in stats)
        print(f"{what:<22} {jobs / elapsed:8.0f} jobs/s | redis {usec / jobs:5.1f} us/job "
              f"(commandstats), {cpu / jobs * 1e6:5.1f} us/job (cpu) | "
              f"{trips / jobs:.3f} script calls/job")


def _job(queue: str) -> NewJob:
    return NewJob(id=new_job_id(), queue=queue, task="t", args_json="[1, 2]",
                  kwargs_json='{"user_id": 7, "days": 30}')


async def bench(url: str, port: int, n: int, batch: int) -> None:
    meter = Meter(redis.Redis(port=port, decode_responses=True))
    b = RedisBackend(url)
    await b.open()
    try:
        jobs = [_job("q") for _ in range(n)]
        meter.start()
        for i in range(0, n, 500):
            await b.enqueue(jobs[i:i + 500])
        meter.stop(n, "enqueue (500/call)")

        meter.start()
        claims = []
        while fetched := (await b.fetch(["q"], batch, "w", 30_000)).claims:
            claims += fetched
        meter.stop(n, f"claim ({batch}/call)")

        meter.start()
        for i in range(0, n, batch):
            await b.settle([Settlement(c.job.id, c.token, Outcome.COMPLETED, result_json="1")
                            for c in claims[i:i + batch]])
        meter.stop(n, f"settle ({batch}/call)")

        await b.enqueue([_job("r") for _ in range(n)])
        meter.start()
        settle: list[Settlement] = []
        while True:
            got = await b.fetch(["r"], batch, "w", 30_000, settle)
            settle = [Settlement(c.job.id, c.token, Outcome.COMPLETED, result_json="1")
                      for c in got.claims]
            if not settle:
                break
        meter.stop(n, "settle+claim loop")

        meter.start()
        for _ in range(1000):
            await b.enqueue([_job("s")])
        meter.stop(1000, "enqueue (1/call)")
    finally:
        await b.close()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    with tempfile.TemporaryDirectory() as folder:
        server = RedisServer(Path(folder)).start()
        try:
            asyncio.run(bench(unique_url(server), server.port, n, batch))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
