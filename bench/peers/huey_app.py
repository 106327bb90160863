"""The Huey app the peer benchmark runs: Huey's documented SQLite storage (`SqliteHuey`)
with its default settings, on the database named by HUEY_BENCH_DB.

Both the driver (huey_sqlite.py) and `huey_consumer huey_app.huey` import this module, so
task names match. With HUEY_BENCH_EXPECT=N the consumer records, through Huey's own
signals, when the first task started and when the N-th one completed, and writes both to
HUEY_BENCH_DONE: the same "first pickup to last done" span conveyor's run reads from its
database (Huey deletes a task row when it dequeues it, so the database cannot tell).
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

from huey import SqliteHuey
from huey.signals import SIGNAL_COMPLETE, SIGNAL_EXECUTING

huey = SqliteHuey(filename=os.environ.get("HUEY_BENCH_DB", "huey-bench.db"))


@huey.task()
def noop() -> None:
    """The no-op (returns None, which Huey does not store: store_none=False)."""


@huey.task()
def stamp() -> float:
    """Returns the wall-clock time at which the consumer started running it (pickup)."""
    return time.time()


_expect = int(os.environ.get("HUEY_BENCH_EXPECT", "0"))
_lock = threading.Lock()
_span: dict[str, Any] = {"first": None, "done": 0}

if _expect:

    @huey.signal(SIGNAL_EXECUTING)
    def _started(signal: str, task: Any, *args: Any, **kwargs: Any) -> None:
        if _span["first"] is None:
            with _lock:
                if _span["first"] is None:
                    _span["first"] = time.time()

    @huey.signal(SIGNAL_COMPLETE)
    def _completed(signal: str, task: Any, *args: Any, **kwargs: Any) -> None:
        with _lock:
            _span["done"] += 1
            if _span["done"] != _expect:
                return
            _span["last"] = time.time()
        path = os.environ["HUEY_BENCH_DONE"]
        with open(path + ".tmp", "w") as f:
            json.dump(_span, f)
        os.replace(path + ".tmp", path)
