"""How values read on the page: relative times, durations, JSON, progress, state colors.

Times are the backend's milliseconds; "now" is the backend's clock at render time, so a
server whose clock is off does not make every job look an hour old.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import Any

from ..jobs import JobState

STATES = tuple(JobState)  # waiting, delayed, active, completed, failed, cancelled


def duration(ms: int | float | None) -> str:
    """1.2 s, 3 min 4 s, 2 h 5 min, 3 d 4 h."""
    if ms is None:
        return "—"
    seconds = max(float(ms), 0.0) / 1000
    if seconds < 1:
        return f"{int(seconds * 1000)} ms"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{int(seconds)} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min" + (f" {secs} s" if secs and minutes < 10 else "")
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    days, hours = divmod(hours, 24)
    return f"{days} d" + (f" {hours} h" if hours else "")


def ago(ms: int | None, now: int) -> str:
    """"3 min ago", "just now", or "in 5 min" for a time still to come."""
    if ms is None:
        return "—"
    delta = now - ms
    if abs(delta) < 1500:
        return "just now"
    return f"{duration(delta)} ago" if delta > 0 else f"in {duration(-delta)}"


def iso(ms: int | None) -> str:
    if ms is None:
        return ""
    moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def compact(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def call(args: list[Any], kwargs: dict[str, Any], limit: int = 100) -> str:
    """The arguments as a call would read: `1, days=90`."""
    parts = [compact(a, 40) for a in args]
    parts += [f"{k}={compact(v, 40)}" for k, v in kwargs.items()]
    text = ", ".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def progress(value: Any) -> tuple[float | None, str]:
    """A percent (if the task reported one) and a label for whatever else it said."""
    percent: float | None = None
    label = ""
    if isinstance(value, bool):
        return None, compact(value)
    if isinstance(value, int | float):
        percent = float(value)
    elif isinstance(value, dict):
        raw = value.get("percent", value.get("progress"))
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            percent = float(raw)
        rest = {k: v for k, v in value.items() if k not in ("percent", "progress")}
        label = " · ".join(str(v) if isinstance(v, str | int | float) else compact(v, 60)
                           for v in rest.values())
    elif value is not None:
        label = compact(value, 80)
    if percent is not None:
        percent = min(max(percent, 0.0), 100.0)
    return percent, label


def error_line(error: dict[str, Any] | None) -> str:
    if not error:
        return ""
    kind, message = error.get("type") or "Error", error.get("message") or ""
    return f"{kind}: {message}" if message else str(kind)


def count(n: int) -> str:
    return f"{n:,}"


def backoff(spec: dict[str, Any] | None) -> str:
    """A retry schedule as a person reads it: "exponential from 1 s, doubling,
    at most 1 h"."""
    if not spec:
        return "default (exponential)"
    kind = spec.get("type")
    try:
        if kind == "fixed":
            return f"fixed, {duration(float(spec['delay']) * 1000)}"
        if kind == "schedule":
            return "then ".join(f"{duration(float(d) * 1000)}, " for d in spec["delays"]
                                ).rstrip(", ") + " (the last repeats)"
        if kind == "exponential":
            factor = float(spec["factor"])
            growth = "doubling" if factor == 2 else f"times {factor:g} each retry"
            text = (f"exponential from {duration(float(spec['base']) * 1000)}, {growth}, "
                    f"at most {duration(float(spec['cap']) * 1000)}")
            jitter = float(spec.get("jitter") or 0)
            return text + (f", ±{jitter * 100:g}% jitter" if jitter else "")
    except (KeyError, TypeError, ValueError):
        pass
    return compact(spec)


def pairs(left: Iterable[Any], right: Iterable[Any]) -> list[tuple[Any, Any]]:
    """The zip filter: ``job.errors|zip(numbers)``."""
    return list(zip(left, right, strict=False))
