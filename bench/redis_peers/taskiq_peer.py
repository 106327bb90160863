"""taskiq with taskiq-redis, as the benchmark drives every system (session.py).

Two documented brokers: ``RedisStreamBroker`` (a stream and consumer group: messages are
acknowledged, so at-least-once) and ``ListQueueBroker`` (a plain list: a message taken by
a worker that dies is lost). No result backend. Worker: ``taskiq worker taskiq_peer:broker
--workers 1 --max-async-tasks N`` (one worker process plus taskiq's supervising parent).
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import probe
from taskiq_redis import ListQueueBroker, RedisStreamBroker

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
KIND = os.environ.get("BENCH_TASKIQ_BROKER", "stream")
broker: Any = RedisStreamBroker(url=URL) if KIND == "stream" else ListQueueBroker(url=URL)


@broker.task(task_name="noop")
async def noop() -> None:
    probe.ran()


@broker.task(task_name="stamp")
async def stamp(i: int) -> None:
    probe.stamp(i)


VARIANTS = {  # broker, --max-async-tasks
    "stream-100": ("stream", 100),
    "stream-500": ("stream", 500),
    "list-100": ("list", 100),
}


class Peer:
    NO_BULK = "no bulk API (task.kiq() one at a time)"

    def __init__(self) -> None:
        self.started = False

    async def _start(self) -> None:
        if not self.started:
            await broker.startup()
            self.started = True

    def info(self) -> dict[str, Any]:
        return {
            "versions": {d: version(d) for d in ("taskiq", "taskiq-redis", "redis", "hiredis")},
            "api": "async (await task.kiq())",
            "bulk": None,
            "variants": {
                name: f"taskiq worker taskiq_peer:broker --workers 1 --max-async-tasks {n} "
                      f"--log-level WARNING; "
                      + ("RedisStreamBroker" if kind == "stream" else "ListQueueBroker")
                for name, (kind, n) in VARIANTS.items()},
            "delivery": ("RedisStreamBroker: acked after execution (at-least-once); "
                         "ListQueueBroker: at-most-once"),
        }

    def worker(self, variant: str) -> tuple[list[str], dict[str, str]]:
        kind, tasks = VARIANTS[variant]
        cli = str(Path(sys.executable).parent / "taskiq")
        return ([cli, "worker", "taskiq_peer:broker", "--workers", "1",
                 "--max-async-tasks", str(tasks), "--log-level", "WARNING"],
                {"BENCH_TASKIQ_BROKER": kind})

    async def aenqueue(self) -> None:
        await self._start()
        await noop.kiq()

    async def preload(self, n: int) -> None:
        await self._start()
        for _ in range(n):
            await noop.kiq()

    async def remaining(self) -> int:
        await self._start()
        from redis.asyncio import Redis

        client = Redis.from_url(URL)
        try:
            if KIND != "stream":
                return int(await client.llen("taskiq"))
            left = 0
            for group in await client.xinfo_groups("taskiq"):
                left += int(group.get("lag") or 0) + int(group.get("pending") or 0)
            return left
        finally:
            await client.aclose()

    async def astamp(self, i: int) -> None:
        await self._start()
        await stamp.kiq(i)

    async def close(self) -> None:
        if self.started:
            await broker.shutdown()
