"""SAQ (simple async queue) on Redis, as the benchmark drives every system (session.py).

Worker: ``saq saq_peer.settings --workers 1`` (one asyncio process) with ``concurrency``
from the variant; saq's own logging left at its CLI default (ERROR).
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import probe
from saq import Queue

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
queue = Queue.from_url(URL, name="default")


async def noop(ctx: dict[str, Any]) -> None:
    probe.ran()


async def stamp(ctx: dict[str, Any], *, i: int) -> None:
    probe.stamp(i)


settings = {
    "queue": queue,
    "functions": [noop, stamp],
    "concurrency": int(os.environ.get("BENCH_SAQ_CONCURRENCY", "10")),
}

VARIANTS = {"c10": 10, "c50": 50, "c100": 100}


class Peer:
    NO_BULK = "no bulk API: queue.map() enqueues one job at a time and waits for results"

    def __init__(self) -> None:
        self.connected = False

    async def _queue(self) -> Any:
        if not self.connected:
            await queue.connect()
            self.connected = True
        return queue

    def info(self) -> dict[str, Any]:
        return {
            "versions": {d: version(d) for d in ("saq", "redis", "hiredis")},
            "api": "async (await queue.enqueue(name))",
            "bulk": None,
            "variants": {name: f"saq saq_peer.settings --workers 1, concurrency={c}"
                         for name, c in VARIANTS.items()},
            "delivery": "job moved to active with BLMOVE; swept back if its worker stops "
                        "heartbeating; result kept (ttl 600 s)",
        }

    def worker(self, variant: str) -> tuple[list[str], dict[str, str]]:
        cli = str(Path(sys.executable).parent / "saq")
        return ([cli, "saq_peer.settings", "--workers", "1"],
                {"BENCH_SAQ_CONCURRENCY": str(VARIANTS[variant])})

    async def aenqueue(self) -> None:
        await (await self._queue()).enqueue("noop")

    async def preload(self, n: int) -> None:
        q = await self._queue()
        for _ in range(n):
            await q.enqueue("noop")

    async def remaining(self) -> int:
        return int(await (await self._queue()).count("incomplete"))

    async def astamp(self, i: int) -> None:
        await (await self._queue()).enqueue("stamp", i=i)

    async def close(self) -> None:
        if self.connected:
            await queue.disconnect()
