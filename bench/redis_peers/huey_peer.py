"""Huey with its Redis storage (``RedisHuey``), as the benchmark drives every system.

Worker: ``huey_consumer huey_peer.huey -k thread -w W -q``: one process, W worker threads,
each dequeuing with a blocking BRPOP (RedisHuey's default ``blocking=True``).
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import probe
from huey import RedisHuey

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
huey = RedisHuey("bench", url=URL)


@huey.task()
def noop() -> None:
    probe.ran()


@huey.task()
def stamp(i: int) -> None:
    probe.stamp(i)


VARIANTS = {"w1": 1, "w2": 2, "w4": 4, "w8": 8}


class Peer:
    NO_BULK = "no bulk API: task.map() enqueues one task at a time"

    def info(self) -> dict[str, Any]:
        return {
            "versions": {d: version(d) for d in ("huey", "redis", "hiredis")},
            "api": "sync (task())",
            "bulk": None,
            "variants": {name: f"huey_consumer huey_peer.huey -k thread -w {w} -q"
                         for name, w in VARIANTS.items()},
            "delivery": "at-most-once: a task popped by a consumer that dies is lost",
        }

    def worker(self, variant: str) -> tuple[list[str], dict[str, str]]:
        cli = str(Path(sys.executable).parent / "huey_consumer")
        return [cli, "huey_peer.huey", "-k", "thread", "-w", str(VARIANTS[variant]), "-q"], {}

    def enqueue(self) -> None:
        noop()

    def preload(self, n: int) -> None:
        for _ in range(n):
            noop()

    def remaining(self) -> int:
        return int(huey.pending_count())

    def stamp(self, i: int) -> None:
        stamp(i)
