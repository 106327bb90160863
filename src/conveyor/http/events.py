"""Live job events over HTTP: the Server-Sent Events routes and long polls, fed by the
process's event hub (conveyor.web.hub, shared with the dashboard). A subscriber that
overflows catches up from the backend; the SSE streams here do.

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
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import StreamingResponse

from ..app import Conveyor
from ..jobs import FINAL_STATES, Event, Job, JobState
from ..task import MAX_QUEUE_NAME
from ..web.hub import EventHub, Subscription, heartbeat_seconds, opened_backend
from . import models as m
from .deps import backend_of, conveyor_of, read_access
from .problems import responses

STATE_KINDS = frozenset(s.value for s in JobState)
FINAL_KINDS = frozenset(s.value for s in FINAL_STATES)


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
        backend = await opened_backend(self.conveyor)
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
