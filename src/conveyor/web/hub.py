"""The per-process event hub: one tail of the backend's event stream (through
conveyor.stream), fanned out to every subscription; shared by the HTTP API's SSE routes,
its long polls and the dashboard's live blocks, and feeding plugins' `on_events`.

While anything listens it tails the stream (one read per tick, however many listeners: a
short interval after activity, growing to `max_interval` when quiet) and hands each page
to the subscriptions that want it, by job id or by queue. With no listener left it
lingers a few seconds, then stops reading; the next subscriber starts it again (from the
stream's head, so nothing old is replayed). Plugins that follow the stream keep it going.

    sub = await hub.subscribe(job_id=job.id)   # or queue="reports", or neither: all jobs
    try:
        events = await sub.get(timeout=15)     # [] on timeout
    finally:
        hub.unsubscribe(sub)

`sub.start` is the hub's cursor when the subscription began: it receives every event with
a greater id, in order. A subscriber that falls more than `buffer` events behind is
marked `overflowed` and should catch up from the backend (``events(after=last_seen)``).
`sub.closed` is set when the server shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import weakref

from ..app import Conveyor
from ..backends.base import Backend, JobFilter
from ..errors import BackendUnavailableError
from ..jobs import Event
from ..plugins import Plugin
from ..stopping import cancel_until_done
from ..stream import EventStream

log = logging.getLogger("conveyor.web.hub")
_HUBS: weakref.WeakSet[EventHub] = weakref.WeakSet()


def heartbeat_seconds() -> float:
    try:
        return max(float(os.environ.get("CONVEYOR_SSE_HEARTBEAT", "15")), 0.05)
    except ValueError:
        return 15.0



class Subscription:
    """Events for one listener, filled by the hub, drained by `get`."""

    def __init__(self, start: int, job_id: str | None, queue: str | None, buffer: int) -> None:
        self.start = start
        self.job_id = job_id
        self.queue = queue
        self.overflowed = False
        self.closed = False
        self.gone = False  # the job was removed (which writes no event)
        self._buffer = buffer
        self._pending: list[Event] = []
        self._signal = asyncio.Event()

    def _offer(self, events: list[Event]) -> None:
        if self.overflowed:
            return
        if len(self._pending) + len(events) > self._buffer:
            self.overflowed = True  # the reader catches up from the backend instead
            self._pending = []
        else:
            self._pending.extend(events)
        self._signal.set()

    def _close(self) -> None:
        self.closed = True
        self._signal.set()

    def _removed(self) -> None:
        self.gone = True
        self._signal.set()

    def recovered(self) -> None:
        """The reader caught up from the backend: deliver from the hub again."""
        self.overflowed = False
        self._pending = []

    async def get(self, timeout: float) -> list[Event]:
        """The events offered since the last call; [] after `timeout` seconds without any
        (or at once when overflowed or closed: check those flags)."""
        if not self._pending and not self.overflowed and not self.closed and not self.gone:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._signal.wait()
        self._signal.clear()
        out, self._pending = self._pending, []
        return out


class EventHub:
    """One backend event reader per server process, fanned out to every subscription."""

    def __init__(self, conveyor: Conveyor, *, min_interval: float = 0.02,
                 max_interval: float = 0.25, linger: float = 10.0, page: int = 500,
                 buffer: int = 10_000, gone_interval: float | None = None) -> None:
        self.conveyor = conveyor
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.linger = linger
        self.page = page
        self.buffer = buffer
        # how often the followed jobs are checked for removal, all in one query
        self.gone_interval = heartbeat_seconds() if gone_interval is None else gone_interval
        self.cursor: int | None = None  # every event up to here was handed out
        self.reads = 0  # backend.events calls made (tests and metrics)
        self._by_job: dict[str, set[Subscription]] = {}
        self._wide: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        self._backend: Backend | None = None
        self._ready: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._waiting = 0  # subscribers waiting for the first read
        _HUBS.add(self)

    @property
    def plugins(self) -> list[Plugin]:
        """Plugins that follow the stream (`Plugin.on_events`): they keep the tail running."""
        return self.conveyor.plugins.subscribers()

    @property
    def subscribers(self) -> int:
        return len(self._wide) + sum(len(s) for s in self._by_job.values()) + len(self.plugins)

    def start(self) -> None:
        """Start tailing now (the server's start-up does this when plugins follow)."""
        if self.plugins and not self._closing:
            self._ensure_running()

    async def subscribe(self, job_id: str | None = None, queue: str | None = None,
                        timeout: float = 10.0) -> Subscription:
        """Listen to one job, one queue, or (neither given) every job."""
        if self._closing:  # the server is stopping: a stream that ends at once
            closed = Subscription(self.cursor or 0, job_id, queue, self.buffer)
            closed._close()
            return closed
        ready = self._ensure_running()
        if not ready.is_set():
            self._waiting += 1
            try:
                async with asyncio.timeout(timeout):
                    await ready.wait()
            except TimeoutError:
                raise BackendUnavailableError("the event stream could not be read") from None
            finally:
                self._waiting -= 1
        assert self.cursor is not None
        # no await from here on: the tail hands out pages between our awaits only
        sub = Subscription(self.cursor, job_id, queue, self.buffer)
        if self._closing:
            sub._close()
        elif job_id is not None:
            self._by_job.setdefault(job_id, set()).add(sub)
        else:
            self._wide.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub.job_id is None:
            self._wide.discard(sub)
            return
        subs = self._by_job.get(sub.job_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._by_job[sub.job_id]

    def shutdown(self) -> None:
        """End every stream (the server is stopping); safe from a signal handler."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._close_all)

    def _close_all(self) -> None:
        self._closing = True
        for sub in [*self._wide, *(s for subs in self._by_job.values() for s in subs)]:
            sub._close()

    async def aclose(self) -> None:
        self._close_all()
        # A cancellation can be swallowed inside the Redis client (seen in tests: the tail
        # went on looping and aclose waited forever): cancel again until the task ends;
        # the tail also stops by itself once closing. An error on the way out is dropped.
        if self._task is not None:
            await cancel_until_done(self._task)

    # -- the tail ----------------------------------------------------------------------
    def _ensure_running(self) -> asyncio.Event:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # first use, or the app moved to another loop (tests)
            self._loop, self._task, self._ready = loop, None, asyncio.Event()
            self._by_job.clear()
            self._wide.clear()
        assert self._ready is not None
        if self._task is None or self._task.done():
            self._ready.clear()
            self._task = loop.create_task(self._tail(), name="conveyor-event-hub")
        return self._ready

    async def _tail(self) -> None:
        """Hand out pages while anyone listens: at once after a full page, soon after
        activity, slower and slower when quiet; stop `linger` seconds after the last
        listener left, or when no listener waits through an outage."""
        assert self._ready is not None
        quiet_since: float | None = None
        interval = self.min_interval
        loop = asyncio.get_running_loop()
        checked = loop.time()
        try:
            while not self._closing:
                if self._by_job and loop.time() - checked >= self.gone_interval:
                    checked = loop.time()
                    with contextlib.suppress(Exception):  # an outage: next time
                        await self._check_removed()
                events = await self._read_page()
                if events is None:  # an outage: keep the listeners, try again
                    if not self.subscribers and not self._waiting:
                        return
                    await asyncio.sleep(1.0)
                    continue
                if events:
                    await self._deliver(events)
                    interval = self.min_interval
                    if len(events) >= self.page:
                        continue
                else:
                    interval = min(interval * 1.5, self.max_interval)
                if self.subscribers:
                    quiet_since = None
                elif quiet_since is None:
                    quiet_since = loop.time()
                elif loop.time() - quiet_since > self.linger:
                    return
                await asyncio.sleep(interval)
        finally:
            self._ready.clear()

    async def _read_page(self) -> list[Event] | None:
        """The next page after the cursor, finding the stream's head first when the hub
        starts or the app was repointed; None when the backend cannot be read."""
        assert self._ready is not None
        try:
            backend = await opened_backend(self.conveyor)
            if backend is not self._backend:  # first run, or the app was repointed
                self._backend, self.cursor = backend, None
                self._ready.clear()
            stream = EventStream(backend, page=self.page)
            if not self._ready.is_set():
                self.cursor = max(await stream.head(), self.cursor or 0)
                self._ready.set()
            events = await stream.read(self.cursor or 0)
            self.reads += 1
        except Exception as exc:
            log.warning("event hub: cannot read events: %s", exc)
            return None
        return events

    async def _deliver(self, events: list[Event]) -> None:
        """Hand a page to the subscriptions and the plugins, then move the cursor past it."""
        self._dispatch(events)
        await self._notify_plugins(events)
        self.cursor = events[-1].id

    async def _check_removed(self) -> None:
        """Removal writes no event: find followed jobs that no longer exist."""
        backend = await opened_backend(self.conveyor)
        followed = list(self._by_job)
        for start in range(0, len(followed), 1000):
            ids = tuple(followed[start:start + 1000])
            page = await backend.list_jobs(JobFilter(ids=ids), limit=len(ids))
            present = {job.id for job in page.jobs}
            for job_id in ids:
                if job_id not in present:
                    for sub in self._by_job.get(job_id, ()):
                        sub._removed()

    async def _notify_plugins(self, events: list[Event]) -> None:
        for plugin in self.plugins:
            try:
                await plugin.on_events(events)
            except Exception:  # one plugin's bug must not stop the stream for the rest
                log.exception("plugin %s failed on %d event(s)", plugin.name, len(events))

    def _dispatch(self, events: list[Event]) -> None:
        if self._by_job:
            grouped: dict[str, list[Event]] = {}
            for event in events:
                if event.job_id in self._by_job:
                    grouped.setdefault(event.job_id, []).append(event)
            for job_id, mine in grouped.items():
                for sub in self._by_job[job_id]:
                    sub._offer(mine)
        for sub in self._wide:
            wanted = events if sub.queue is None else [e for e in events if e.queue == sub.queue]
            if wanted:
                sub._offer(wanted)


async def opened_backend(conveyor: Conveyor) -> Backend:
    await conveyor.aopen()
    return conveyor.backend


def shutdown_all() -> None:
    """End the streams of every hub in this process (a server's signal handler calls it,
    so open streams do not hold up a graceful shutdown)."""
    for hub in list(_HUBS):
        hub.shutdown()
