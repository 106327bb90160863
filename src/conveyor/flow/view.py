"""How a stored limiter looks to people and scripts: one JSON-ready dict per limiter,
shared by ``conveyor limits``, ``GET /v1/limits``, the dashboard's Limits page and the
Prometheus gauges, so all four say the same thing.

    {"queue": "llm", "name": "task:summarize", "scope": "task",
     "rate": "60/m", "concurrency": 2,                       # in force now
     "declared": {"rate": "60/m", "concurrency": 2}, "override": None,
     "active": 1, "blocked": 4,                              # over every key
     "keys": [{"key": "acme", "active": 1, "starts": 3, "paused_until": None,
               "blocked": 4}, ...]}                          # most blocked first

`starts` counts the starts in the current window of the rate; `blocked` counts the
waiting jobs the claim last found held back by a limit of theirs (every limiter of a
blocked job's group counts it, under the key that group uses for that limiter's rate).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..backends.base import LimitInfo
from .declare import QUEUE_LIMITER
from .spec import Limit


def scope(name: str) -> str:
    """'queue', 'task' or 'limiter' (a named, shared one)."""
    if name == QUEUE_LIMITER:
        return "queue"
    return "task" if name.startswith("task:") else "limiter"


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    when = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def limit_text(data: dict[str, Any] | None) -> dict[str, Any] | None:
    """A stored limit (JSON form) as people write it: {"rate": "10/s", "concurrency": 5}."""
    if data is None:
        return None
    limit = Limit.from_json(data)
    return {"rate": None if limit.rate is None else str(limit.rate),
            "concurrency": limit.concurrency}


def keys_of(info: LimitInfo) -> list[dict[str, Any]]:
    """Every key with use or blocked jobs: most blocked first, then most active."""
    keys: dict[str, dict[str, Any]] = {
        u.key: {"key": u.key, "active": u.active, "starts": u.starts,
                "paused_until": _iso(u.paused_until), "blocked": 0}
        for u in info.use}
    for key, n in info.blocked.items():
        keys.setdefault(key, {"key": key, "active": 0, "starts": 0, "paused_until": None,
                              "blocked": 0})["blocked"] = n
    return sorted(keys.values(), key=lambda k: (-k["blocked"], -k["active"], k["key"]))


def limit_data(info: LimitInfo) -> dict[str, Any]:
    effective = limit_text(info.effective) or {"rate": None, "concurrency": None}
    keys = keys_of(info)
    return {"queue": info.queue, "name": info.name, "scope": scope(info.name),
            "rate": effective["rate"], "concurrency": effective["concurrency"],
            "declared": limit_text(info.declared), "override": limit_text(info.override),
            "active": sum(k["active"] for k in keys),
            "blocked": sum(k["blocked"] for k in keys), "keys": keys}
