"""What every Python system's benchmark tasks call, in the worker process: the same few
lines for conveyor and for each peer, so no system's task does more than another's.

- `ran()`: the no-op's body. Counts runs in this process; the first run's start and the
  BENCH_EXPECT-th run's end are written to BENCH_DONE as JSON (with this process's pid),
  so throughput is "first job started -> last job finished" for every system alike.
- `stamp(i)`: the pickup job's body. Appends "i <time.time()>" to BENCH_STAMPS the moment
  the job starts (the file write comes after the clock read).

Standard library only: it is imported inside each peer's own virtualenv.
"""

from __future__ import annotations

import json
import os
import threading
import time

_EXPECT = int(os.environ.get("BENCH_EXPECT", "0"))
_DONE = os.environ.get("BENCH_DONE", "")
_STAMPS = os.environ.get("BENCH_STAMPS", "")
_lock = threading.Lock()
_state: dict[str, float | None] = {"first": None}
_count = 0


def ran() -> None:
    global _count
    now = time.time()
    with _lock:
        if _state["first"] is None:
            _state["first"] = now
        _count += 1
        if _count != _EXPECT or not _DONE:
            return
    with open(_DONE + ".tmp", "w") as f:
        json.dump({"first": _state["first"], "last": time.time(), "count": _count,
                   "pid": os.getpid()}, f)
    os.replace(_DONE + ".tmp", _DONE)


def stamp(i: int) -> None:
    now = time.time()
    if _STAMPS:
        with open(_STAMPS, "a") as f:
            f.write(f"{i} {now!r}\n")
