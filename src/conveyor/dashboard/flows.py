"""The flow page: one flow (chain, group, graph; conveyor/flows) with its state, every job
in the order added with its state, what it waits for and links to each job; a job's page
links here. The shape is flows/view.py's, as the API and the CLI show it.

While the flow runs the page is live: /live/flows/{id} re-renders its blocks when an
event of one of its jobs arrives, and ends (`end`) once the whole flow has ended."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ..flows.view import flow_data
from ..jobs import JobState
from ..web.hub import Subscription
from .access import viewer
from .streams import HEARTBEAT_S, LIFETIME_S, MIN_GAP_S, RETRY_MS, _allowed, _stream, message
from .views import dashboard_of, error_page, fragment, render, totals


async def flow_page(request: Request) -> Response:
    viewer(request)
    dash = dashboard_of(request)
    flow_id = request.path_params["flow_id"]
    backend = await dash.backend()
    snap = await dash.live.snapshot()
    dead = totals(snap.queues)[JobState.FAILED]
    jobs = await backend.flow_jobs(flow_id)
    if not jobs:
        return error_page(request, 404, "Flow not found",
                          f"No flow with id {flow_id} exists (or its jobs were removed).",
                          now=snap.now, dead=dead)
    return render(request, "flow.html", now=snap.now, dead=dead,
                  flow=flow_data(flow_id, jobs))


async def live_flow(request: Request) -> Response:
    if not _allowed(request):
        return PlainTextResponse("sign in first", status_code=401)
    return _stream(_flow_blocks(request, request.path_params["flow_id"]))


async def _flow_blocks(request: Request, flow_id: str) -> AsyncIterator[str]:
    dash = dashboard_of(request)
    backend = await dash.backend()
    yield f"retry: {RETRY_MS}\n\n"
    sent: dict[str, str] = {}
    ends = time.monotonic() + LIFETIME_S
    async with dash.live.subscribe() as subscription:  # before reading: miss nothing
        while time.monotonic() < ends and not subscription.closed:
            jobs = await backend.flow_jobs(flow_id)
            if not jobs:
                yield message("end", "removed")
                return
            data = flow_data(flow_id, jobs)
            for name in ("flow-table", "flow-state"):
                html = fragment(request, f"_{name.replace('-', '_')}.html", flow=data)
                if sent.get(name) != html:
                    sent[name] = html
                    yield message(name, html)
            if data["state"] != "running":
                yield message("end", data["state"])
                return
            if not await _changed(subscription, {job.id for job in jobs}):
                yield ": heartbeat\n\n"
            await asyncio.sleep(MIN_GAP_S)  # let a burst of events settle


async def _changed(subscription: Subscription, ids: set[str]) -> bool:
    """Wait for an event of one of `ids` (True; also after an overflow, which may have
    dropped one), or a heartbeat's time without one (False)."""
    deadline = time.monotonic() + HEARTBEAT_S
    while (left := deadline - time.monotonic()) > 0:
        events = await subscription.get(left)
        if subscription.overflowed:
            subscription.recovered()
            return True
        if any(event.job_id in ids for event in events):
            return True
    return False


routes = [Route("/flows/{flow_id}", flow_page, name="flow"),
          Route("/live/flows/{flow_id}", live_flow)]
