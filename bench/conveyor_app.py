"""The tasks the benchmark runs.

`build(url)` makes an app with the benchmark's tasks on one database; the module-level
`app` (for the worker process) reads its database from CONVEYOR_URL, so the driver and
the worker process it starts share one temp database file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from conveyor import Conveyor, Task


async def noop() -> None:
    """The async no-op: measures conveyor itself, not the work."""


def noop_sync() -> None:
    """The same no-op as a plain ``def``, run on the worker's thread executor."""


async def stamp() -> float:
    """Returns the wall-clock time at which the worker started running it (pickup)."""
    return time.time()


@dataclass(frozen=True)
class BenchApp:
    app: Conveyor
    noop: Task[[], Any]
    noop_sync: Task[[], Any]
    stamp: Task[[], Any]


def build(url: str | None = None) -> BenchApp:
    app = Conveyor(url)
    return BenchApp(app, app.task(noop), app.task(noop_sync), app.task(stamp))


app = build().app
