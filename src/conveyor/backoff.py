"""Retry delays: exponential (with cap and jitter), fixed, or an explicit schedule.

A backoff is stored with the job as a small JSON dict, so every worker computes the same
delays whatever code version enqueued it. Users write it as a spec:

- ``"exponential"`` or ``{"type": "exponential", "base": 1, "factor": 2, "cap": 3600,
  "jitter": 0.2}``: base * factor**(n-1), capped, +/- jitter fraction;
- ``"fixed:30s"``, a number of seconds, or ``{"type": "fixed", "delay": 30}``;
- ``"30s,2m,10m,1h"``, a list ``[30, 120, 600, 3600]`` or ``{"type": "schedule",
  "delays": [...]}``: the n-th retry waits the n-th delay, the last one repeats.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any

from .errors import InvalidOptionError

MAX_DURATION = 10 * 365 * 86400.0  # seconds; beyond it a delay is a mistake (and overflows)
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")

DEFAULT_BACKOFF: dict[str, Any] = {
    "type": "exponential", "base": 1.0, "factor": 2.0, "cap": 3600.0, "jitter": 0.2,
}


def parse_duration(value: str | float | int, what: str = "duration") -> float:
    """Seconds from ``12``, ``1.5``, ``"250ms"``, ``"30s"``, ``"2m"``, ``"1h"``, ``"1d"``."""
    if isinstance(value, bool):
        raise InvalidOptionError(f"{what} must be a number of seconds or like '30s', not a bool")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        if value.strip().startswith("-"):
            raise InvalidOptionError(f"{what} must not be negative, got {value!r}")
        match = _DURATION.match(value)
        if not match:
            raise InvalidOptionError(f"{what} {value!r} is not a duration like 30, '500ms', '2m'")
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        raise InvalidOptionError(f"{what} must be a number of seconds or like '30s'")
    if seconds != seconds or seconds < 0 or seconds == float("inf"):
        raise InvalidOptionError(f"{what} must be a finite number >= 0, got {value!r}")
    if seconds > MAX_DURATION:
        raise InvalidOptionError(f"{what} must be at most 10 years, got {value!r}")
    return seconds


def normalize(spec: Any) -> dict[str, Any]:
    """Turn any accepted backoff spec into its stored dict form, or raise InvalidOptionError."""
    if spec is None or spec == "exponential":
        return dict(DEFAULT_BACKOFF)
    if isinstance(spec, int | float | str) and not isinstance(spec, bool):
        if isinstance(spec, str) and spec.startswith("fixed:"):
            return {"type": "fixed", "delay": parse_duration(spec[6:], "backoff delay")}
        if isinstance(spec, str) and "," in spec:
            return _schedule([part for part in spec.split(",")])
        return {"type": "fixed", "delay": parse_duration(spec, "backoff delay")}
    if isinstance(spec, list | tuple):
        return _schedule(spec)
    if isinstance(spec, dict):
        kind = spec.get("type")
        if kind == "fixed":
            return {"type": "fixed", "delay": parse_duration(spec.get("delay", 0), "backoff delay")}
        if kind == "schedule":
            delays = spec.get("delays")
            if not isinstance(delays, list | tuple):
                raise InvalidOptionError("backoff schedule needs a list of delays")
            return _schedule(delays)
        if kind == "exponential":
            return _exponential(spec)
    raise InvalidOptionError(
        f"bad backoff {spec!r}: use 'exponential', 'fixed:30s', '30s,2m,10m' or a dict"
    )


def _schedule(delays: Sequence[Any]) -> dict[str, Any]:
    if not delays:
        raise InvalidOptionError("backoff schedule needs at least one delay")
    return {"type": "schedule", "delays": [parse_duration(d, "backoff delay") for d in delays]}


def _exponential(spec: dict[str, Any]) -> dict[str, Any]:
    out = dict(DEFAULT_BACKOFF)
    for name in ("base", "cap"):
        if name in spec:
            out[name] = parse_duration(spec[name], f"backoff {name}")
    for name, low, high in (("factor", 1.0, 100.0), ("jitter", 0.0, 1.0)):
        if name in spec:
            value = spec[name]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidOptionError(f"backoff {name} must be a number")
            if not low <= value <= high:
                raise InvalidOptionError(f"backoff {name} must be between {low} and {high}")
            out[name] = float(value)
    unknown = set(spec) - {"type", "base", "factor", "cap", "jitter"}
    if unknown:
        raise InvalidOptionError(f"unknown backoff field(s): {', '.join(sorted(unknown))}")
    return out


def delay_for(backoff: dict[str, Any] | None, retry_number: int) -> float:
    """Seconds to wait before retry number `retry_number` (1 = the first retry)."""
    spec = backoff or DEFAULT_BACKOFF
    kind = spec["type"]
    if kind == "fixed":
        return float(spec["delay"])
    if kind == "schedule":
        delays: list[float] = spec["delays"]
        return float(delays[min(retry_number, len(delays)) - 1])
    raw = spec["base"] * spec["factor"] ** max(retry_number - 1, 0)
    delay = min(float(raw), float(spec["cap"]))
    jitter = float(spec["jitter"])
    if jitter:
        delay *= 1.0 + random.uniform(-jitter, jitter)
    return max(0.0, min(delay, float(spec["cap"])))
