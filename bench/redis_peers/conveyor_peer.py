"""conveyor on Redis, as the benchmark drives every system (see session.py).

Worker: ``python -m conveyor worker conveyor_peer:app -q default -c C``, one process,
Worker defaults otherwise (leases, heartbeats, maintenance, events all on). The tasks are
``async def`` (run on the worker's event loop) calling probe.py like every peer's tasks.
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import version
from typing import Any

import probe

from conveyor import Conveyor

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
app = Conveyor(URL)


@app.task
async def noop() -> None:
    probe.ran()


@app.task
async def stamp(i: int) -> None:
    probe.stamp(i)


VARIANTS = {"c100": 100, "c50": 50, "c200": 200, "c500": 500}


class Peer:
    NO_BULK = ""

    def info(self) -> dict[str, Any]:
        return {
            "versions": {d: version(d) for d in ("conveyor", "redis", "hiredis")},
            "api": "sync and async (task.enqueue / await task.aenqueue)",
            "bulk": "app.enqueue_many([noop.prepare() ...]): one call, one script per batch",
            "variants": {name: f"python -m conveyor worker -q default -c {c}"
                         for name, c in VARIANTS.items()},
            "delivery": "at-least-once: lease with token, renewed; result and completed job "
                        "kept (default retention); an event per state change",
        }

    def worker(self, variant: str) -> tuple[list[str], dict[str, str]]:
        return ([sys.executable, "-m", "conveyor", "worker", "conveyor_peer:app",
                 "-q", "default", "-c", str(VARIANTS[variant])], {"CONVEYOR_URL": URL})

    def enqueue(self) -> None:
        noop.enqueue()

    async def aenqueue(self) -> None:
        await noop.aenqueue()

    def bulk(self, n: int) -> None:
        app.enqueue_many([noop.prepare() for _ in range(n)])

    def preload(self, n: int) -> None:
        for start in range(0, n, 5_000):
            app.enqueue_many([noop.prepare() for _ in range(min(5_000, n - start))])

    def remaining(self) -> int:
        for queue in app.queues():
            if queue.name == "default":
                counts = {state.value: count for state, count in queue.counts.items()}
                return counts["waiting"] + counts["delayed"] + counts["active"]
        return 0

    def stamp(self, i: int) -> None:
        stamp.enqueue(i)

    def close(self) -> None:
        app.close()
