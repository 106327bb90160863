"""Live job events: the per-process `EventHub` and the Server-Sent Events routes.

The hub is the one reader of the backend's event stream in a server process. While
anything listens it tails ``backend.events(after=cursor)`` (one query per tick, however
many listeners: a short interval after activity, growing to `max_interval` when quiet)
and hands each page to the subscriptions that want it, by job id or by queue. With no
listener left it lingers a few seconds, then stops reading; the next subscriber starts it
again (it first finds the stream's head, so nothing old is replayed).

    hub = hub_of(request)                      # or api.state.hub
    sub = await hub.subscribe(job_id=job.id)   # or queue="reports", or neither: all jobs
    try:
        events = await sub.get(timeout=15)     # [] on timeout
    finally:
        hub.unsubscribe(sub)

`sub.start` is the hub's cursor when the subscription began: it receives every event with
a greater id, in order. A subscriber that falls more than `buffer` events behind is
marked `overflowed` and should catch up from the backend (``events(after=last_seen)``);
the SSE streams here do. `sub.closed` is set when the server shuts down.

SSE (WHATWG "Server-sent events"): each event carries ``id:`` (the backend's event id),
``event:`` (a job state, ``progress`` or ``log``) and ``data:`` (JSON). A stream starts
with ``retry:``; a reconnecting client sends ``Last-Event-ID`` (or ``?last_event_id=``)
and gets every later event exactly once. Without it, a job stream starts with a
``snapshot`` event (the job's status, its id the hub's cursor). A ``: heartbeat`` comment
goes out every 15 s (``CONVEYOR_SSE_HEARTBEAT``). A job stream closes after the job's
final state; the global stream (``/v1/events``) never does.

On Redis, events of two queues may share an id; the global stream sends them together,
but a client that disconnects between the two misses the second on resume (per-job and
per-queue streams are exact).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import weakref
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import StreamingResponse

from ..app import Conveyor
from ..backends.base import Backend, JobFilter
from ..errors import BackendUnavailableError
from ..jobs import FINAL_STATES, Event, Job, JobState
from ..plugins import Plugin
from ..stopping import cancel_until_done
from ..stream import EventStream
from ..task import MAX_QUEUE_NAME
from . import models as m
from .deps import backend_of, conveyor_of, read_access
from .problems import responses

log = logging.getLogger("conveyor.http.events")
STATE_KINDS = frozenset(s.value for s in JobState)
FINAL_KINDS = frozenset(s.value for s in FINAL_STATES)
_HUBS: weakref.WeakSet[EventHub] = weakref.WeakSet()


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
            backend = await _opened(self.conveyor)
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
        backend = await _opened(self.conveyor)
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


async def _opened(conveyor: Conveyor) -> Backend:
    await conveyor.aopen()
    return conveyor.backend


def shutdown_all() -> None:
    """End the streams of every hub in this process (a server's signal handler calls it,
    so open streams do not hold up a graceful shutdown)."""
    for hub in list(_HUBS):
        hub.shutdown()


def hub_of(request: Request) -> EventHub:
    hub: EventHub = request.app.state.hub
    return hub


async def wait_for_change(hub: EventHub, conveyor: Conveyor, job_id: str,
                          seconds: float) -> Job:
    """The job once its state differs from now (or is final), or after `seconds`."""
    sub = await hub.subscribe(job_id=job_id)
    try:
        job = (await conveyor.aget_job(job_id)).job
        if job.is_final:
            return job
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (left := deadline - loop.time()) > 0:
            events = await sub.get(left)
            if sub.overflowed or sub.closed or sub.gone or any(
                    e.kind in STATE_KINDS and e.kind != job.state.value for e in events):
                break
        return (await conveyor.aget_job(job_id)).job
    finally:
        hub.unsubscribe(sub)


# -- SSE ---------------------------------------------------------------------------------
def heartbeat_seconds() -> float:
    try:
        return max(float(os.environ.get("CONVEYOR_SSE_HEARTBEAT", "15")), 0.05)
    except ValueError:
        return 15.0


RETRY_MS = 3000
HEARTBEAT = b": heartbeat\n\n"


def _frame(kind: str, data: Any, event_id: int | None) -> bytes:
    head = b"" if event_id is None else b"id: %d\n" % event_id
    return head + b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _event_frame(event: Event) -> bytes:
    return _frame(event.kind, {"id": event.id, "job_id": event.job_id, "queue": event.queue,
                               "kind": event.kind, "at": m.iso(event.at), "data": event.data},
                  event.id)


def _last_event_id(header: int | None, query: int | None) -> int | None:
    return header if header is not None else query


SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
router = APIRouter(responses=responses(400, 401, 422, 503))
LastEventId = Annotated[int | None, Header(
    alias="Last-Event-ID", ge=0, description="Resume after this event id.")]
LastEventIdQuery = Annotated[int | None, Query(
    alias="last_event_id", ge=0, description="Resume after this event id.")]
_STREAM_DOC: dict[int | str, dict[str, Any]] = {200: {"description": "text/event-stream",
                     "content": {"text/event-stream": {"schema": {"type": "string"}}}}}


async def _with_retry(frames: AsyncGenerator[bytes, None]) -> AsyncIterator[bytes]:
    """Send `retry:` once, with the first event: on a block of its own some clients
    (against the spec) dispatch an empty message."""
    async with contextlib.aclosing(frames):
        async for frame in frames:
            if not frame.startswith(b":"):
                yield b"retry: %d\n" % RETRY_MS + frame
                break
            yield frame
        async for frame in frames:
            yield frame


class _Catchup:
    """Reads the backend from the last id a stream sent (resume, or after an overflow)."""

    def __init__(self, conveyor: Conveyor, job_id: str | None, queue: str | None,
                 page: int) -> None:
        self.conveyor, self.job_id, self.queue, self.page = conveyor, job_id, queue, page

    async def read(self, after: int) -> AsyncIterator[Event]:
        backend = await _opened(self.conveyor)
        while True:
            events = await backend.events(after=after, limit=self.page, job_id=self.job_id)
            for event in events:
                if self.queue is None or event.queue == self.queue:
                    yield event
            if len(events) < self.page:
                return
            after = events[-1].id


@router.get("/jobs/{job_id}/events", dependencies=[Depends(read_access)], tags=["events"],
            summary="Server-Sent Events of one job, until its final state",
            response_class=StreamingResponse, responses={**_STREAM_DOC,
                                                         **responses(404, 410)})
async def job_events(request: Request,
                     job_id: Annotated[str, Path(max_length=200)],
                     last_event_id: LastEventId = None,
                     last_event_id_query: LastEventIdQuery = None,
                     ) -> StreamingResponse:
    after = _last_event_id(last_event_id, last_event_id_query)
    conveyor = conveyor_of(request)
    await backend_of(request)
    hub = hub_of(request)
    sub = await hub.subscribe(job_id=job_id)
    try:
        job = (await conveyor.aget_job(job_id)).job  # 404 / 410 before the stream starts
    except BaseException:
        hub.unsubscribe(sub)
        raise
    stream = _job_stream(hub, sub, conveyor, job, after, m.prefix(request))
    return StreamingResponse(_with_retry(stream), media_type="text/event-stream",
                             headers=SSE_HEADERS)


async def _job_stream(hub: EventHub, sub: Subscription, conveyor: Conveyor, job: Job,
                      after: int | None, base: str) -> AsyncGenerator[bytes, None]:
    heartbeat = heartbeat_seconds()
    catchup = _Catchup(conveyor, job.id, None, hub.page)
    sent = _JobSent(sub.start if after is None else after)
    try:
        if after is None:
            yield _frame("snapshot", m.job_status(job, base), sub.start)
        else:
            async for event in catchup.read(after):
                if (frame := sent.frame(event)) is not None:
                    yield frame
                if sent.finished:
                    return
        if job.is_final:  # a snapshot says so, or its final event was at or before
            return        # Last-Event-ID
        while not sent.finished:
            events = await _next_job_events(sub, catchup, sent.last, heartbeat)
            if events is None:
                return
            if not events:
                yield HEARTBEAT
            for event in events:
                if (frame := sent.frame(event)) is not None:
                    yield frame
    finally:
        hub.unsubscribe(sub)


async def _next_job_events(sub: Subscription, catchup: _Catchup, last: int,
                           heartbeat: float) -> list[Event] | None:
    """What a job's stream sends next ([]: a heartbeat is due), read from the backend
    after an overflow; None when the stream ends (server stopping, job removed)."""
    events = await sub.get(heartbeat)
    if sub.closed or sub.gone:
        return None
    if sub.overflowed:
        sub.recovered()
        events = [e async for e in catchup.read(last)]
    return events


class _JobSent:
    """What a job's stream has sent: every event up to `last`; `finished` once the job's
    final event went out (nothing is sent after it)."""

    def __init__(self, last: int) -> None:
        self.last = last
        self.finished = False

    def frame(self, event: Event) -> bytes | None:
        """The event's frame, or None if it was sent already or the stream is finished."""
        if self.finished or event.id <= self.last:
            return None
        self.last = event.id
        self.finished = event.kind in FINAL_KINDS
        return _event_frame(event)


@router.get("/events", dependencies=[Depends(read_access)], tags=["events"],
            summary="Server-Sent Events of every job (or one queue's), never closing",
            response_class=StreamingResponse, responses=_STREAM_DOC)
async def all_events(request: Request,
                     queue: Annotated[str | None, Query(
                         min_length=1, max_length=MAX_QUEUE_NAME,
                         pattern=m.QUEUE_PATTERN)] = None,
                     last_event_id: LastEventId = None,
                     last_event_id_query: LastEventIdQuery = None,
                     ) -> StreamingResponse:
    after = _last_event_id(last_event_id, last_event_id_query)
    conveyor = conveyor_of(request)
    await backend_of(request)
    hub = hub_of(request)
    sub = await hub.subscribe(queue=queue)
    return StreamingResponse(_with_retry(_wide_stream(hub, sub, conveyor, after)),
                             media_type="text/event-stream", headers=SSE_HEADERS)


async def _wide_stream(hub: EventHub, sub: Subscription, conveyor: Conveyor,
                       after: int | None) -> AsyncGenerator[bytes, None]:
    heartbeat = heartbeat_seconds()
    catchup = _Catchup(conveyor, None, sub.queue, hub.page)
    try:
        if after is None:
            # an id to resume from even if no event comes before a disconnect
            yield _frame("ready", {"cursor": sub.start}, sub.start)
            sent = _Sent(sub.start)
        else:
            sent = _Sent(after)
            async for event in catchup.read(after):
                if sent.fresh(event):
                    yield _event_frame(event)
        while True:
            events = await sub.get(heartbeat)
            if sub.closed:
                return
            if sub.overflowed:
                sub.recovered()
                # from one below: events of other queues may share the last id (Redis)
                events = [e async for e in catchup.read(max(sent.last - 1, 0))]
            if not events:
                yield HEARTBEAT
                continue
            for event in events:
                if sent.fresh(event):
                    yield _event_frame(event)
    finally:
        hub.unsubscribe(sub)


class _Sent:
    """What a stream of many jobs has sent: everything below `last`, and at `last` the
    events in `at_last` (or all of them when that is None: a resume point)."""

    def __init__(self, last: int) -> None:
        self.last = last
        self.at_last: set[tuple[str, str, str]] | None = None

    def fresh(self, event: Event) -> bool:
        """True if `event` was not sent yet; then it counts as sent."""
        key = (event.job_id, event.queue, event.kind)
        if event.id > self.last:
            self.last, self.at_last = event.id, {key}
            return True
        if event.id < self.last or self.at_last is None or key in self.at_last:
            return False
        self.at_last.add(key)
        return True
