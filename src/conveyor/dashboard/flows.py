"""The flow page: one flow (chain, group, graph; conveyor/flows) with its state, every job
in the order added with its state, what it waits for and links to each job; a job's page
links here. The shape is flows/view.py's, as the API and the CLI show it."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..flows.view import flow_data
from ..jobs import JobState
from .access import viewer
from .views import dashboard_of, error_page, render, totals


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


routes = [Route("/flows/{flow_id}", flow_page, name="flow")]
