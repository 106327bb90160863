"""The scheduler: a leader duty that fires due ticks, then wakes for the next one.

The keeper calls the duty on every beat (about once a second) while its process holds
the maintenance lock. The duty only marks this process as leading until a little past
the next expected beat; a task on the keeper's event loop does the work: read the
schedules and the backend's clock, fire what is due (one atomic backend operation per
schedule, all in one call), and sleep until the earliest next tick or the next re-read,
whichever is first. So tick latency is one backend round of work, not a polling period.

Leadership changes need no hand-over: a firing carries the version it was planned from,
so a scheduler that lost the lock (or two that both think they lead) cannot fire a tick
twice. A new leader finds the next runs where the last one left them.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ..backends.base import Backend
from ..backends.schedules import Firing, ScheduleRecord
from .planner import plan
from .spec import ScheduleSpec

log = logging.getLogger("conveyor.schedules")
REREAD = 1.0  # seconds between reads of the schedules when nothing is due sooner
MIN_SLEEP = 0.002


class Scheduler:
    def __init__(self) -> None:
        self._read_at: float | None = None
        self._cached: list[ScheduleRecord] = []
        self._specs: dict[str, ScheduleSpec] = {}
        self._lead_until = 0.0
        self._last_call = 0.0
        self._runner: asyncio.Task[None] | None = None
        self.rounds = 0
        self.fired = 0

    async def __call__(self, backend: Backend) -> None:
        """The leader duty: lead until a beat is overdue, keep the runner going."""
        now = time.monotonic()
        gap = min(max(now - self._last_call, 0.2), 5.0) if self._last_call else 1.0
        self._last_call = now
        self._lead_until = now + 2 * gap + 0.5
        if self._runner is None or self._runner.done():
            self._runner = asyncio.ensure_future(self._run(backend))

    def leading(self) -> bool:
        return time.monotonic() < self._lead_until

    async def _run(self, backend: Backend) -> None:
        while self.leading():
            try:
                pause = await self.round(backend)
            except Exception as exc:  # a backend outage: the next round tries again
                log.error("scheduler round failed: %s", exc)
                pause = REREAD
            await asyncio.sleep(pause)

    async def round(self, backend: Backend) -> float:
        """Fire what is due; seconds until the next look."""
        started = time.monotonic()
        now = await backend.now()
        records = await self._records(backend, started)
        firings: list[Firing] = []
        wake = now + round(REREAD * 1000)
        for record in records:
            try:
                decided = plan(record, self._spec(record), now)
            except Exception as exc:  # one bad definition must not stop the others
                log.error("schedule %r cannot be planned: %s", record.name, exc)
                continue
            if decided.firing is not None:
                firings.append(decided.firing)
            if decided.wake_at is not None:
                wake = min(wake, decided.wake_at)
        if firings:
            self._read_at = None  # what was read is stale now: read before the next firing
            fired = await backend.fire_schedules(firings)
            self.fired += sum(len(f.job_ids) for f in fired)
            if not all(f.applied for f in fired):
                wake = now + 50  # another change came first: plan again from a fresh read
        self.rounds += 1
        return max((wake - now) / 1000 - (time.monotonic() - started), MIN_SLEEP)

    async def _records(self, backend: Backend, at: float) -> list[ScheduleRecord]:
        """The stored schedules. A read less than REREAD old that no firing has made stale
        is used again: waking for a due tick then costs no read (1,000 schedules take tens
        of ms to read), and a change made since is caught by the firing's version check."""
        if self._read_at is None or at - self._read_at >= REREAD * 0.9:
            self._cached = await backend.schedules()
            self._read_at = at
        return self._cached

    def _spec(self, record: ScheduleRecord) -> ScheduleSpec:
        """Parsed once per definition (the JSON changes only when the definition does)."""
        spec = self._specs.get(record.definition_json)
        if spec is None or spec.name != record.name or spec.paused != record.paused:
            if len(self._specs) > 100_000:
                self._specs.clear()
            spec = self._specs[record.definition_json] = ScheduleSpec.from_record(record)
        return spec
