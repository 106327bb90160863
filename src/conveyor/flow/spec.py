"""Limit specs as users write them, checked and turned into what the backends store.

A rate is "N/<window>": ``"100/m"``, ``"10/s"``, ``"5/10s"``, ``"1000/500ms"``. It counts
*starts* (claims) of jobs: a job may start at backend time t only if fewer than N jobs of
the same limiter and key started in (t - window, t] (a sliding-window log of starts), so no
window of that length, anywhere on the backend's clock, ever holds more than N starts.

A concurrency cap is a positive integer: at most that many jobs of the limiter (and key)
active at once, across every worker.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..backoff import parse_duration
from ..errors import InvalidOptionError

MAX_RATE = 1_000_000  # starts per window; a log holds at most this many entries per key
MAX_CONCURRENCY = 1_000_000
MAX_NAME = 100
MAX_FLOW_KEY = 255
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_WINDOW_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


@dataclass(frozen=True, slots=True)
class Rate:
    """At most `count` starts in any window of `window_ms` milliseconds."""

    count: int
    window_ms: int

    def __str__(self) -> str:
        for unit in ("d", "h", "m", "s"):
            size = _WINDOW_UNITS[unit]
            if self.window_ms % size == 0:
                n = self.window_ms // size
                return f"{self.count}/{'' if n == 1 else n}{unit}"
        return f"{self.count}/{self.window_ms}ms"


@dataclass(frozen=True, slots=True)
class Limit:
    """What one limiter allows: a rate, a concurrency cap, or both (None: no such limit)."""

    rate: Rate | None = None
    concurrency: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"rate": None if self.rate is None else [self.rate.count, self.rate.window_ms],
                "concurrency": self.concurrency}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Limit:
        if not data:
            return cls()
        rate = data.get("rate")
        return cls(rate=None if rate is None else Rate(int(rate[0]), int(rate[1])),
                   concurrency=data.get("concurrency"))

    @property
    def empty(self) -> bool:
        return self.rate is None and self.concurrency is None


def parse_rate(value: Any, what: str = "rate_limit") -> Rate:
    """``"100/m"`` -> Rate(100, 60000); InvalidOptionError for anything else."""
    if isinstance(value, Rate):
        return value
    if not isinstance(value, str):
        raise InvalidOptionError(f"{what} must be a string like '100/m' or '10/s', "
                                 f"not {type(value).__name__}")
    match = _RATE.match(value)
    if match is None:
        raise InvalidOptionError(
            f"{what} {value!r} is not a rate like '100/m', '10/s' or '5/10s' "
            "(count / window, window unit ms, s, m, h or d)")
    count = int(match.group(1))
    scale = float(match.group(2)) if match.group(2) else 1.0
    window_ms = round(scale * _WINDOW_UNITS[match.group(3)])
    if not 1 <= count <= MAX_RATE:
        raise InvalidOptionError(f"{what} {value!r}: the count must be between 1 and {MAX_RATE}")
    if not 1 <= window_ms <= 30 * 86_400_000:
        raise InvalidOptionError(f"{what} {value!r}: the window must be between 1 ms and 30 days")
    return Rate(count, window_ms)


def parse_concurrency(value: Any, what: str = "concurrency") -> int:
    if isinstance(value, bool) or not isinstance(value, int) \
            or not 1 <= value <= MAX_CONCURRENCY:
        raise InvalidOptionError(
            f"{what} must be an integer between 1 and {MAX_CONCURRENCY}, got {value!r}")
    return value


def parse_limit(rate_limit: Any = None, concurrency: Any = None) -> Limit:
    return Limit(rate=None if rate_limit is None else parse_rate(rate_limit),
                 concurrency=None if concurrency is None else parse_concurrency(concurrency))


def check_name(name: Any, what: str = "limiter name") -> str:
    """Limiter names: 1-100 letters, digits, '-', '_', '.' (':' marks built-in scopes)."""
    if not isinstance(name, str) or not name or len(name) > MAX_NAME \
            or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise InvalidOptionError(f"bad {what} {name!r}: 1-100 letters, digits, '-', '_' or '.'")
    return name


def check_flow_key(value: Any, what: str) -> str:
    """A per-job key value (a tenant, a user id): a string or an integer, kept as text."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidOptionError(f"{what} must be a string or an integer, got {value!r}")
    text = str(value)
    if not text or len(text) > MAX_FLOW_KEY:
        raise InvalidOptionError(f"{what} must be 1 to {MAX_FLOW_KEY} characters")
    if any(c < " " or "\x7f" <= c <= "\x9f" or c in "\u2028\u2029" for c in text):
        raise InvalidOptionError(f"{what} must not contain control characters or line breaks")
    return text


KeySource = str | Callable[..., Any]


def check_key_source(value: Any, what: str) -> KeySource | None:
    """`rate_key=` / `concurrency_key=` at declaration: an argument name or a callable."""
    if value is None:
        return None
    if isinstance(value, str) and value.isidentifier():
        return value
    if callable(value):
        source: Callable[..., Any] = value
        return source
    raise InvalidOptionError(f"{what} must be an argument name or a callable, got {value!r}")


def seconds_ms(value: Any, what: str) -> int:
    return round(parse_duration(value, what) * 1000)
