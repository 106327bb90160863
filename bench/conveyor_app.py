"""The tasks the benchmark runs.

`build(url)` makes an app with the benchmark's tasks on one database; the module-level
`app` (for the worker process) reads its database from CONVEYOR_URL, so the driver and
the worker process it starts share one temp database file.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from conveyor import Conveyor, Task


async def noop() -> None:
    """The async no-op: measures conveyor itself, not the work."""


def noop_sync() -> None:
    """The same no-op as a plain ``def``, run on the worker's thread executor."""


_redis: Any = None


async def redis_call() -> None:
    """One asyncio Redis round trip (INCR), as a typical I/O-bound job body: what the
    event loop's speed shows on. BENCH_REDIS_URL names the server."""
    global _redis
    if _redis is None:  # one client per worker process, made on the worker's loop
        import redis.asyncio

        _redis = redis.asyncio.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    await _redis.incr("bench:redis_call")


async def stamp() -> float:
    """Returns the wall-clock time at which the worker started running it (pickup)."""
    return time.time()


@dataclass(frozen=True)
class BenchApp:
    app: Conveyor
    noop: Task[[], Any]
    noop_sync: Task[[], Any]
    stamp: Task[[], Any]
    redis_call: Task[[], Any]


def build(url: str | None = None) -> BenchApp:
    app = Conveyor(url)
    return BenchApp(app, app.task(noop), app.task(noop_sync), app.task(stamp),
                    app.task(redis_call))


app = build().app
