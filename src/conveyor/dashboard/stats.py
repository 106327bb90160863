"""Throughput and failures per minute for the last hour, counted from the event stream.

Nothing is kept in memory that the backend does not also have: on start (and after the
dashboard was left unwatched for a while) the last hour is read back from the backend's
event stream, so the charts survive a restart of the server, and every `conveyor serve`
process draws the same picture.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..backends.base import Backend
from ..jobs import Event, JobState
from ..stream import EventStream

MINUTE_MS = 60_000
WINDOW_MINUTES = 60
_RETRYING = {JobState.WAITING.value, JobState.DELAYED.value, JobState.FAILED.value}


@dataclass
class Minute:
    completed: int = 0
    failed_attempts: int = 0  # attempts that raised (retried or final), stalls included
    dead: int = 0  # jobs that ended failed


@dataclass
class Throughput:
    """Per-minute counts; `last_id`/`last_at` say how far the stream was read."""

    minutes: dict[int, Minute] = field(default_factory=dict)
    last_id: int = 0
    last_at: int = 0
    ready: bool = False  # the backfill of the last hour is done

    def add(self, events: Iterable[Event]) -> None:
        for event in events:
            if event.id > self.last_id:
                self.last_id, self.last_at = event.id, max(self.last_at, event.at)
            if event.kind == JobState.COMPLETED.value:
                self._minute(event.at).completed += 1
            elif event.kind in _RETRYING and event.data.get("error"):
                minute = self._minute(event.at)
                minute.failed_attempts += 1
                if event.kind == JobState.FAILED.value:
                    minute.dead += 1

    def _minute(self, at: int) -> Minute:
        key = at // MINUTE_MS
        minute = self.minutes.get(key)
        if minute is None:
            minute = self.minutes[key] = Minute()
            if len(self.minutes) > WINDOW_MINUTES * 3:
                for old in sorted(self.minutes)[: -WINDOW_MINUTES - 1]:
                    del self.minutes[old]
        return minute

    async def catch_up(self, backend: Backend, until_id: int, now_ms: int,
                       page: int = 1000, max_events: int = 2_000_000) -> None:
        """Read the stream from where this left off (at most the last hour) to `until_id`."""
        stream = EventStream(backend, page=page)
        start = now_ms - WINDOW_MINUTES * MINUTE_MS
        after = self.last_id
        if not self.ready or self.last_at < start:
            after = max(after, await stream.since(start))
        read = 0
        if after < until_id:
            async for events in stream.follow(after, until=until_id):
                self.add(events)
                read += len(events)
                if read >= max_events:
                    break
        self.ready = True

    def series(self, now_ms: int) -> dict[str, Any]:
        """The last hour, one point a minute (the current one partial), for the charts."""
        current = now_ms // MINUTE_MS
        keys = range(current - WINDOW_MINUTES + 1, current + 1)
        rows = [self.minutes.get(k, Minute()) for k in keys]
        rates: list[float | None] = []
        for row in rows:
            total = row.completed + row.failed_attempts
            rates.append(round(100 * row.failed_attempts / total, 1) if total else None)
        recent = rows[-5:]
        done = sum(r.completed for r in recent)
        failed = sum(r.failed_attempts for r in recent)
        return {
            "x": [k * 60 for k in keys],  # unix seconds
            "completed": [r.completed for r in rows],
            "failed": [r.failed_attempts for r in rows],
            "rate": rates,
            "ready": self.ready,
            "last5": {"completed": done, "failed": failed,
                      "rate": round(100 * failed / (done + failed), 1) if done + failed else None,
                      "per_minute": round(done / 5, 1)},
            "hour": {"completed": sum(r.completed for r in rows),
                     "failed": sum(r.failed_attempts for r in rows),
                     "dead": sum(r.dead for r in rows)},
        }
