"""What the dashboard's live updates read: the server's one `EventHub` (the HTTP API's
follower of the backend's event stream, shared with every SSE client), a one-second cache
of queue and worker snapshots (so a hundred open overview pages cost one `queues()` call a
second), and the per-minute throughput counts behind the charts.

The charts' counter holds one subscription to the hub while any overview page is open,
and catches up from the backend's stream (at most the last hour) whenever it starts again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from ..app import Conveyor
from ..backends.base import Backend, QueueInfo, WorkerInfo
from ..jobs import Event
from ..stopping import cancel_until_done
from ..stream import EventStream
from ..web.hub import EventHub, Subscription
from .stats import Throughput

log = logging.getLogger("conveyor.dashboard")


@dataclass(frozen=True)
class Snapshot:
    queues: list[QueueInfo]
    workers: list[WorkerInfo]
    now: int  # the backend's clock when this was read


class Live:
    """The live state of one dashboard: hub subscriptions, snapshots, throughput counts."""

    def __init__(self, conveyor: Conveyor, hub: EventHub, *, snapshot_ttl: float = 1.0,
                 linger: float = 10.0) -> None:
        self.conveyor = conveyor
        self.hub = hub
        self.snapshot_ttl = snapshot_ttl
        self.linger = linger
        self.throughput = Throughput()
        self._snapshot: tuple[float, Snapshot] | None = None
        self._snapshot_lock: asyncio.Lock | None = None
        self._watchers = 0
        self._counter: asyncio.Task[None] | None = None
        self._closing = False

    async def backend(self) -> Backend:
        await self.conveyor.aopen()
        return self.conveyor.backend

    # -- snapshots ----------------------------------------------------------------------
    async def snapshot(self) -> Snapshot:
        if self._snapshot_lock is None:
            self._snapshot_lock = asyncio.Lock()
        async with self._snapshot_lock:
            cached = self._snapshot
            if cached is not None and time.monotonic() - cached[0] < self.snapshot_ttl:
                return cached[1]
            backend = await self.backend()
            snap = Snapshot(await backend.queues(), await backend.workers(), await backend.now())
            self._snapshot = (time.monotonic(), snap)
            return snap

    def invalidate(self) -> None:
        """Forget the cached snapshot (after an action, the next page shows its effect)."""
        self._snapshot = None

    # -- events -------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def subscribe(self, job_id: str | None = None) -> AsyncIterator[Subscription]:
        """The hub's events from now on (every job's, or one job's) while the block runs."""
        await self.backend()
        sub = await self.hub.subscribe(job_id=job_id)
        try:
            yield sub
        finally:
            self.hub.unsubscribe(sub)

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[None]:
        """An overview page is open: keep the throughput counter running meanwhile."""
        self._watchers += 1
        if not self._closing and (self._counter is None or self._counter.done()):
            self._counter = asyncio.create_task(self._count(), name="dashboard-throughput")
        try:
            yield
        finally:
            self._watchers -= 1

    async def _count(self) -> None:
        """Feed the throughput counter from the hub, after reading back what it missed."""
        try:
            backend = await self.backend()
            async with self.subscribe() as sub:
                start, now = sub.start, await backend.now()
                backfill = asyncio.create_task(self._backfill(backend, start, now))
                last = start
                idle_since: float | None = None
                try:
                    while not sub.closed and not self._closing:
                        events = await sub.get(1.0)
                        if sub.overflowed:  # fell behind: read the gap from the backend
                            sub.recovered()
                            events = await self._read_after(backend, last)
                        fresh = [e for e in events if e.id > last]
                        if fresh:
                            self.throughput.add(fresh)
                            last = max(e.id for e in fresh)
                        if self._watchers:
                            idle_since = None
                        elif idle_since is None:
                            idle_since = time.monotonic()
                        elif time.monotonic() - idle_since > self.linger:
                            return
                finally:  # it reads the backend: a cancellation may be swallowed there
                    await cancel_until_done(backfill)
        except Exception as exc:  # the charts go stale; counts and pages keep working
            log.warning("dashboard: throughput counter stopped: %s", exc)

    async def _backfill(self, backend: Backend, until_id: int, now: int) -> None:
        try:
            await self.throughput.catch_up(backend, until_id, now)
        except Exception as exc:  # the charts miss the past; the live counts go on
            log.warning("dashboard: reading the last hour of events failed: %s", exc)
            self.throughput.ready = True

    @staticmethod
    async def _read_after(backend: Backend, after: int, limit: int = 100_000) -> list[Event]:
        events: list[Event] = []
        async for page in EventStream(backend, page=1000).follow(after):
            events += page
            if len(events) >= limit:
                break
        return events

    async def close(self) -> None:
        """Stop the throughput counter, even if a cancellation is swallowed in a backend
        call (its loop also ends at its next turn once closing)."""
        self._closing = True
        if self._counter is not None:
            await cancel_until_done(self._counter)
