"""When a schedule ticks: a cron expression in a time zone, or a fixed interval.

Cron expressions have 5 fields (minute hour day-of-month month day-of-week, as in cron:
when both day fields are restricted a day matching either runs), or 6 with a leading
seconds field; ``@yearly @annually @monthly @weekly @daily @midnight @hourly`` stand for
their usual expressions. cronsim parses and iterates them on wall-clock time in a
`zoneinfo` zone, so a daily 02:30 runs once on a spring-forward night (at 03:00, when
02:30 does not exist) and once on a fall-back night (at the first 02:30).

An interval (``every="30s"``) ticks at ``anchor + k * every``; the anchor is the schedule's
start, or the Unix epoch, so every scheduler computes the same tick times.

Times are integer ms since the epoch, from the backend's clock.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from ..backoff import parse_duration
from ..errors import InvalidOptionError

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MIN_EVERY_MS = 100
_SCAN = 100_000  # ticks counted one by one at most; beyond, a backlog is summed up


def zone(name: str) -> ZoneInfo:
    if not isinstance(name, str) or not name:
        raise InvalidOptionError("tz must be an IANA time zone name like 'Europe/Lisbon'")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidOptionError(f"unknown time zone {name!r}") from None


@dataclass(frozen=True, slots=True)
class Timing:
    cron: str | None = None  # as written (an alias stays an alias)
    every_ms: int | None = None
    tz: str = "UTC"
    anchor_ms: int = 0

    @classmethod
    def parse(cls, cron: str | None, every: object, tz: str | None,
              anchor_ms: int = 0) -> Timing:
        """Check and build; InvalidOptionError names what is wrong."""
        if (cron is None) == (every is None):
            raise InvalidOptionError("a schedule needs exactly one of cron= or every=")
        if every is not None:
            if tz is not None:
                raise InvalidOptionError("tz= applies to cron= schedules, not every=")
            if isinstance(every, dt.timedelta):
                every = every.total_seconds()
            if not isinstance(every, str | int | float):
                raise InvalidOptionError("every must be a duration like '30s' or seconds")
            every_ms = round(parse_duration(every, "every") * 1000)
            if every_ms < MIN_EVERY_MS:
                raise InvalidOptionError(f"every must be at least {MIN_EVERY_MS}ms")
            return cls(every_ms=every_ms, anchor_ms=anchor_ms)
        if not isinstance(cron, str):
            raise InvalidOptionError("cron must be a string like '0 9 * * *'")
        zone(tz or "UTC")
        timing = cls(cron=cron.strip(), tz=tz or "UTC", anchor_ms=anchor_ms)
        try:
            timing._iter(0)
        except (CronSimError, ValueError, KeyError) as exc:
            raise InvalidOptionError(f"bad cron expression {cron!r}: {exc}") from None
        return timing

    @property
    def expression(self) -> str:
        if self.cron is not None:
            return self.cron
        return f"every {_duration(self.every_ms or 0)}"

    def _fields(self) -> str:
        expr = self.cron or ""
        fields = ALIASES.get(expr.lower(), expr)
        if len(fields.split()) not in (5, 6):
            raise ValueError("want 5 fields (or 6 with seconds first) or an @alias")
        return fields

    def _iter(self, after_ms: int, reverse: bool = False) -> CronSim:
        start = dt.datetime.fromtimestamp(after_ms / 1000, ZoneInfo(self.tz))
        return CronSim(self._fields(), start, reverse=reverse)

    def next_after(self, after_ms: int) -> int | None:
        """The first tick strictly after `after_ms` (None: the expression never runs again)."""
        if self.every_ms is not None:
            steps = (after_ms - self.anchor_ms) // self.every_ms + 1
            return self.anchor_ms + max(steps, 0) * self.every_ms
        try:
            return round(next(self._iter(after_ms)).timestamp() * 1000)
        except StopIteration:
            return None

    def due(self, first_ms: int, now_ms: int) -> tuple[list[int], int]:
        """Ticks from `first_ms` (a tick) up to `now_ms`: the last `_SCAN` of them, oldest
        first, and how many there were in all."""
        if first_ms > now_ms:
            return [], 0
        if self.every_ms is not None:
            count = (now_ms - first_ms) // self.every_ms + 1
            start = first_ms + max(count - _SCAN, 0) * self.every_ms
            return list(range(start, now_ms + 1, self.every_ms)), count
        ticks, count, at = [first_ms], 1, first_ms
        while True:
            nxt = self.next_after(at)
            if nxt is None or nxt > now_ms:
                return ticks, count
            if count >= _SCAN:  # a long outage of a fast schedule: jump to the end
                return self._tail(nxt, now_ms, count)
            ticks.append(nxt)
            count, at = count + 1, nxt

    def _tail(self, at: int, now_ms: int, count: int) -> tuple[list[int], int]:
        """The latest tick only, and a count of the rest estimated at one per second (the
        finest a cron expression can tick): enough to skip, run once, or report."""
        after = (now_ms // 1000 + 1) * 1000  # reversed, cronsim yields ticks strictly before
        latest = round(next(self._iter(after, reverse=True)).timestamp() * 1000)
        return [latest], count + max((now_ms - at) // 1000, 1)


def _duration(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"
