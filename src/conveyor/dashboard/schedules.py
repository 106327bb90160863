"""The Schedules page: every schedule with its next run and its last run's job, and the
pause / resume / trigger buttons (POST forms with the CSRF token, admins only, like every
other action; see actions.py)."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ..errors import ScheduleNotFoundError
from .access import admin_form, viewer
from .session import session_of
from .views import base_path, dashboard_of, render

ACTIONS = ("pause", "resume", "trigger")


async def schedules_page(request: Request) -> Response:
    viewer(request)
    dash = dashboard_of(request)
    backend = await dash.backend()
    found = await dash.conveyor.schedules.alist()
    return render(request, "schedules.html", now=await backend.now(), schedules=found)


async def schedule_action(request: Request) -> Response:
    await admin_form(request)
    name, verb = request.path_params["name"], request.path_params["action"]
    if verb not in ACTIONS:
        raise HTTPException(404)
    dash = dashboard_of(request)
    await dash.backend()  # opens the app's backend on this loop
    api = dash.conveyor.schedules
    try:
        if verb == "pause":
            await api.apause(name)
            text = f"Paused schedule {name}: it fires no tick until resumed."
        elif verb == "resume":
            await api.aresume(name)
            text = f"Resumed schedule {name}."
        else:
            handle = await api.atrigger(name)
            text = f"Triggered schedule {name}: job {handle.id} is waiting."
        flash = ("ok", text)
    except ScheduleNotFoundError as exc:
        flash = ("error", str(exc))
    dash.live.invalidate()
    session_of(request).set_flash(*flash)
    return RedirectResponse(base_path(request) + "/schedules", status_code=303)


routes = [
    Route("/schedules", schedules_page, name="schedules"),
    Route("/schedules/{name}/{action:str}", schedule_action, methods=["POST"],
          name="schedule_action"),
]
