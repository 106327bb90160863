"""The dashboard's Server-Sent Events: server-rendered blocks of a page, swapped in place
by htmx's SSE extension, plus the charts' data as JSON.

    /live/summary?view=overview|workers   counts, workers, dead letters, charts (each second)
    /live/jobs/{id}                       one job, re-rendered on each of its events; ends
                                          with an `end` event once the job is final

A block is sent only when its HTML changed, so a quiet page costs a heartbeat comment
every 15 s. Streams end after a few minutes (the browser reconnects by itself), so no
proxy or server shutdown ever waits on one.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from ..jobs import JobState
from .pages import job_context, waiting_of
from .session import principal, session_of
from .views import dashboard_of, fragment, live_workers, queue_rows, totals

HEARTBEAT_S = 15.0
LIFETIME_S = 300.0
RETRY_MS = 2000
MIN_GAP_S = 0.2  # coalesce bursts of progress/log events into one update


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def message(event: str, data: str, event_id: int | None = None) -> str:
    """One SSE message. Every line break the spec knows (CRLF, CR, LF) starts a new
    `data:` line, so text in the data (a key, a log line, an error) can never start a
    field of its own (`event:`, `id:`, `retry:`) that the browser would obey."""
    if _LINE_BREAK.search(event):
        raise ValueError(f"an SSE event name has no line breaks: {event!r}")
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines += [f"data: {line}" for line in _LINE_BREAK.split(data)]
    return "\n".join(lines) + "\n\n"


def _stream(body: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(body, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _allowed(request: Request) -> bool:
    return principal(dashboard_of(request).settings, session_of(request)) is not None


async def summary(request: Request) -> Response:
    if not _allowed(request):
        return PlainTextResponse("sign in first", status_code=401)
    view = request.query_params.get("view", "overview")
    return _stream(_summary(request, view))


async def _summary(request: Request, view: str) -> AsyncIterator[str]:
    dash = dashboard_of(request)
    live = dash.live
    yield f"retry: {RETRY_MS}\n\n"
    sent: dict[str, str] = {}
    ends = time.monotonic() + LIFETIME_S
    quiet_since = time.monotonic()
    async with live.watching(), live.subscribe() as subscription:
        while time.monotonic() < ends and not subscription.closed:
            for name, html in (await _summary_blocks(request, view)).items():
                if sent.get(name) != html:
                    sent[name] = html
                    quiet_since = time.monotonic()
                    yield message(name, html)
            if time.monotonic() - quiet_since > HEARTBEAT_S:
                quiet_since = time.monotonic()
                yield ": heartbeat\n\n"
            await subscription.get(1.0)  # at most a second; events wake it sooner
            if subscription.overflowed:
                subscription.recovered()  # the blocks are re-read from snapshots anyway
            await asyncio.sleep(MIN_GAP_S)


async def _summary_blocks(request: Request, view: str) -> dict[str, str]:
    dash = dashboard_of(request)
    live = dash.live
    snap = await live.snapshot()
    total = totals(snap.queues)
    blocks = {"nav-dead": fragment(request, "_nav_dead.html", dead=total[JobState.FAILED])}
    if view == "workers":
        workers = sorted(snap.workers, key=lambda w: (w.host, w.pid))
        blocks["workers"] = fragment(request, "_workers_table.html", now=snap.now,
                                     workers=workers)
        return blocks
    series = live.throughput.series(snap.now)
    blocks["cards"] = fragment(request, "_overview_cards.html", now=snap.now, totals=total,
                               alive=live_workers(snap.workers, snap.now),
                               workers=snap.workers, series=series)
    rows = queue_rows(snap.queues, snap.workers, snap.now, dash.conveyor.queue_names)
    blocks["queues"] = fragment(request, "_queue_rows.html", now=snap.now, rows=rows)
    blocks["chart"] = json.dumps(series)
    return blocks


async def job(request: Request) -> Response:
    if not _allowed(request):
        return PlainTextResponse("sign in first", status_code=401)
    return _stream(_job(request, request.path_params["job_id"]))


JOB_BLOCKS = ("job-head", "job-waiting", "job-progress", "job-facts", "job-timeline", "job-errors",
              "job-logs", "job-result")


async def _job(request: Request, job_id: str) -> AsyncIterator[str]:
    dash = dashboard_of(request)
    backend = await dash.backend()
    yield f"retry: {RETRY_MS}\n\n"
    sent: dict[str, str] = {}
    ends = time.monotonic() + LIFETIME_S
    async with dash.live.subscribe(job_id) as subscription:  # before reading: miss nothing
        last_id = subscription.start
        while time.monotonic() < ends and not subscription.closed:
            current = await backend.get(job_id)
            if current is None:
                yield message("end", "removed", last_id)
                return
            now = await backend.now()
            context = job_context(current, now, await waiting_of(backend, current))
            for name in JOB_BLOCKS:
                html = fragment(request, f"_{name.replace('-', '_')}.html", now=now, **context)
                if sent.get(name) != html:
                    sent[name] = html
                    yield message(name, html, last_id)
            if current.is_final:
                yield message("end", current.state.value, last_id)
                return
            events = await subscription.get(HEARTBEAT_S)
            if subscription.overflowed:
                subscription.recovered()  # the job is re-read below: nothing is lost
            elif not events:
                yield ": heartbeat\n\n"
                continue
            await asyncio.sleep(MIN_GAP_S)  # let a burst of progress and logs settle
            events += await subscription.get(0)
            last_id = max([last_id, *(e.id for e in events)])


routes = [
    Route("/live/summary", summary),
    Route("/live/jobs/{job_id}", job),
]
