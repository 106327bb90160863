"""BullMQ for Python (the ``bullmq`` package), as the benchmark drives every system.

BullMQ has no worker CLI: the worker process is this file run as a script,
``python bullmq_peer.py --worker C``, one asyncio process with ``Worker(concurrency=C)``.
Default job options (completed jobs are kept, like conveyor's retention).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import probe
from bullmq import Queue, Worker

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
QUEUE = "default"
VARIANTS = {"c10": 10, "c50": 50, "c100": 100}


async def process(job: Any, token: str) -> None:
    if job.name == "noop":
        probe.ran()
    else:
        probe.stamp(job.data["i"])


async def work(concurrency: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    worker = Worker(QUEUE, process, {"connection": URL, "concurrency": concurrency})
    await stop.wait()
    await worker.close()


class Peer:
    NO_BULK = ""

    def __init__(self) -> None:
        self.queue: Any = None

    def _queue(self) -> Any:
        if self.queue is None:
            self.queue = Queue(QUEUE, {"connection": URL})
        return self.queue

    def info(self) -> dict[str, Any]:
        return {
            "versions": {d: version(d) for d in ("bullmq", "redis", "hiredis")},
            "api": "async (await queue.add(name, data))",
            "bulk": "await queue.addBulk([...]): one pipeline of addJob scripts",
            "variants": {name: f"python bullmq_peer.py --worker {c} (Worker concurrency={c})"
                         for name, c in VARIANTS.items()},
            "delivery": "at-least-once: job lock renewed; stalled jobs moved back to wait; "
                        "completed jobs kept",
        }

    def worker(self, variant: str) -> tuple[list[str], dict[str, str]]:
        return [sys.executable, str(Path(__file__).resolve()), "--worker",
                str(VARIANTS[variant])], {}

    async def aenqueue(self) -> None:
        await self._queue().add("noop", {})

    async def bulk(self, n: int) -> None:
        await self._queue().addBulk([{"name": "noop", "data": {}} for _ in range(n)])

    async def preload(self, n: int) -> None:
        for start in range(0, n, 5_000):
            await self.bulk(min(5_000, n - start))

    async def remaining(self) -> int:
        counts = await self._queue().getJobCounts("waiting", "active", "delayed",
                                                  "prioritized", "paused")
        return int(sum(counts.values()))

    async def astamp(self, i: int) -> None:
        await self._queue().add("stamp", {"i": i})

    async def close(self) -> None:
        if self.queue is not None:
            await self.queue.close()


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    asyncio.run(work(int(sys.argv[2])))
