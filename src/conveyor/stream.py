"""The one reader of a backend's event stream.

Every part that follows job events reads them through here: the HTTP service's event hub
(SSE, and plugins' `on_events`), the metrics plugin, the webhook follower (a leader duty)
and the dashboard's charts. Event ids only grow, so a reader's position is a cursor: the
id of the last event it handled.

    stream = EventStream(backend)
    cursor = await stream.head()                   # from now on ...
    cursor = await stream.since(now_ms - 3600_000) # ... or from an hour ago
    async for page in stream.follow(cursor, budget=2.0):
        jobs = await stream.jobs_of(page)          # the jobs of a page, in a few reads
        cursor = page[-1].id
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable

from .backends.base import Backend, JobFilter
from .jobs import Event, Job

PAGE = 500  # events per read, and ids per job lookup


class EventStream:
    """Reads one backend's event stream: its head, a point in time, pages after a cursor,
    and the jobs a page speaks of."""

    def __init__(self, backend: Backend, *, page: int = PAGE) -> None:
        self.backend = backend
        self.page = page
        self.reads = 0  # backend.events calls made (tests and the hub's figures)

    async def head(self) -> int:
        """The newest event's id (0 if there is none): follow from here to see only what
        happens from now on."""
        return await self.backend.event_head()

    async def since(self, at_ms: int) -> int:
        """A cursor from which the stream yields exactly the events at or after `at_ms`
        (backend time): a search over ids, one one-event read per step, never a scan."""

        async def starts_late(after: int) -> bool:
            first = await self.read(after, limit=1)
            return not first or first[0].at >= at_ms

        if await starts_late(0):
            return 0
        low, high = 0, 1
        while not await starts_late(high):
            low, high = high, high * 16
        while high - low > 1:
            middle = (low + high) // 2
            if await starts_late(middle):
                high = middle
            else:
                low = middle
        return high

    async def read(self, after: int, *, limit: int | None = None,
                   job_id: str | None = None) -> list[Event]:
        """One page of events after the cursor, oldest first."""
        self.reads += 1
        return await self.backend.events(after=after, limit=limit or self.page, job_id=job_id)

    async def follow(self, after: int, *, budget: float | None = None,
                     until: int | None = None) -> AsyncIterator[list[Event]]:
        """Pages after the cursor until caught up (a short page), past `until`, or
        `budget` seconds spent; the caller moves its cursor as it handles each page."""
        deadline = None if budget is None else time.monotonic() + budget
        while deadline is None or time.monotonic() < deadline:
            events = await self.read(after)
            if until is not None:
                events = [e for e in events if e.id <= until]
            if not events:
                return
            yield events
            after = events[-1].id
            if len(events) < self.page or (until is not None and after >= until):
                return

    async def jobs_of(self, events: Iterable[Event]) -> dict[str, Job]:
        """The stored jobs these events speak of (removed ones are missing)."""
        ids = tuple(dict.fromkeys(e.job_id for e in events))
        found: dict[str, Job] = {}
        for start in range(0, len(ids), self.page):
            chunk = ids[start:start + self.page]
            page = await self.backend.list_jobs(JobFilter(ids=chunk), limit=len(chunk))
            found.update((job.id, job) for job in page.jobs)
        return found
