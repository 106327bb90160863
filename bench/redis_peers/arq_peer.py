"""arq, as the benchmark drives every system (session.py).

Worker: ``arq arq_peer.WorkerSettings`` (one asyncio process) with ``max_jobs`` and
``poll_delay`` from the variant, ``log_results=False`` and WARNING logs (through arq's
``--custom-log-dict``). arq claims a job per WATCH/MULTI transaction and polls the queue
every ``poll_delay`` (default 0.5 s), so these two settings bound its throughput.
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import probe
from arq import create_pool
from arq.connections import RedisSettings

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


async def noop(ctx: dict[str, Any]) -> None:
    probe.ran()


async def stamp(ctx: dict[str, Any], i: int) -> None:
    probe.stamp(i)


class WorkerSettings:
    functions = [noop, stamp]
    redis_settings = RedisSettings.from_dsn(URL)
    max_jobs = int(os.environ.get("BENCH_ARQ_MAX_JOBS", "10"))
    poll_delay = float(os.environ.get("BENCH_ARQ_POLL_DELAY", "0.5"))
    log_results = False


LOGGING = {"version": 1, "disable_existing_loggers": False,
           "handlers": {"err": {"class": "logging.StreamHandler", "level": "WARNING"}},
           "loggers": {"arq": {"handlers": ["err"], "level": "WARNING"}}}

VARIANTS = {  # max_jobs, poll_delay
    "default": (10, 0.5),
    "jobs100-poll10ms": (100, 0.01),
    "jobs100-poll1ms": (100, 0.001),
    "jobs500-poll1ms": (500, 0.001),
}


class Peer:
    NO_BULK = "no bulk API (enqueue_job one at a time)"

    def __init__(self) -> None:
        self.pool: Any = None

    async def _pool(self) -> Any:
        if self.pool is None:
            self.pool = await create_pool(WorkerSettings.redis_settings)
        return self.pool

    def info(self) -> dict[str, Any]:
        return {
            "versions": {d: version(d) for d in ("arq", "redis", "hiredis")},
            "api": "async (await pool.enqueue_job(name))",
            "bulk": None,
            "variants": {name: f"arq arq_peer.WorkerSettings: max_jobs={m}, poll_delay={p}"
                         for name, (m, p) in VARIANTS.items()},
            "delivery": "in-progress key per job (WATCH/MULTI); result kept 1 h (keep_result)",
        }

    def worker(self, variant: str) -> tuple[list[str], dict[str, str]]:
        max_jobs, poll = VARIANTS[variant]
        cli = str(Path(sys.executable).parent / "arq")
        return ([cli, "--custom-log-dict", "arq_peer.LOGGING", "arq_peer.WorkerSettings"],
                {"BENCH_ARQ_MAX_JOBS": str(max_jobs), "BENCH_ARQ_POLL_DELAY": str(poll)})

    async def aenqueue(self) -> None:
        await (await self._pool()).enqueue_job("noop")

    async def preload(self, n: int) -> None:
        pool = await self._pool()
        for _ in range(n):
            await pool.enqueue_job("noop")

    async def remaining(self) -> int:
        return int(await (await self._pool()).zcard("arq:queue"))

    async def astamp(self, i: int) -> None:
        await (await self._pool()).enqueue_job("stamp", i)

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.aclose()
