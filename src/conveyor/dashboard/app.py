"""Builds the dashboard's ASGI app: routes, the session middleware, static files and the
pages shown for refused, missing and failed requests.

    from conveyor.dashboard import create_dashboard
    my_app.mount("/ops/jobs", create_dashboard(conveyor, settings))
"""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from ..app import Conveyor
from ..errors import ConveyorError
from ..web.guard import OpenModeGuard
from ..web.hub import EventHub
from ..web.settings import HttpSettings
from . import access, actions, flows, limits, pages, schedules, streams
from .access import LoginRequired, Refused, login_redirect
from .live import Live
from .revocation import Revocations
from .session import SessionMiddleware
from .views import HERE, Dashboard, error_page, make_templates

log = logging.getLogger("conveyor.dashboard")


async def _login_required(request: Request, exc: Exception) -> Response:
    return login_redirect(request)


async def _refused(request: Request, exc: Exception) -> Response:
    reason = exc.reason if isinstance(exc, Refused) else "Refused."
    return error_page(request, 403, "Not allowed", reason)


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 404:
        return error_page(request, 404, "Page not found",
                          "There is no dashboard page at this address.")
    return error_page(request, status, "Request refused", str(getattr(exc, "detail", "")))


async def _conveyor_error(request: Request, exc: Exception) -> Response:
    log.warning("dashboard: %s", exc)
    return error_page(request, 503 if "Backend" in type(exc).__name__ else 400,
                      "conveyor could not do that", str(exc))


def create_dashboard(conveyor: Conveyor, settings: HttpSettings | None = None, *,
                     hub: EventHub | None = None) -> Starlette:
    """The dashboard for one conveyor app, to mount at any path of an ASGI app.

    `hub` is the server's event hub (``create_app`` passes its own, so the API's streams
    and the dashboard's share one reader of the event stream); without one it makes its
    own.
    """
    settings = settings or HttpSettings.from_env()
    revocations = Revocations(conveyor)
    app = Starlette(
        routes=[*pages.routes, *actions.routes, *schedules.routes, *limits.routes, *access.routes,
                *streams.routes, *flows.routes,
                Mount("/static", StaticFiles(directory=HERE / "static", check_dir=False),
                      name="static")],
        middleware=[Middleware(SessionMiddleware, settings=settings,
                               revocations=revocations)] + (
            [Middleware(OpenModeGuard, allowed_hosts=settings.allowed_hosts, forms_under="")]
            if settings.open else []),
        exception_handlers={LoginRequired: _login_required, Refused: _refused,
                            HTTPException: _http_error, ConveyorError: _conveyor_error},
    )
    live = Live(conveyor, hub if hub is not None else EventHub(conveyor))
    app.state.dashboard = Dashboard(conveyor, settings, make_templates(), live, revocations)
    return app
