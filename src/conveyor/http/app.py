"""Builds the ASGI app from the parts in this package.

    api = create_app(conveyor)            # serve it (conveyor serve), or
    user_app.mount("/jobs", api)          # mount it: every URL it gives is under /jobs

Everything starts lazily (the backend opens on the first request, the event hub on the
first stream), because a mounted app's lifespan never runs. `api.state` holds
`conveyor`, `settings` and `hub` (the process's one `EventHub`, for other parts that
want live events).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from .. import __version__
from ..app import Conveyor
from ..metrics import Metrics
from ..web.guard import OpenModeGuard
from ..web.hub import EventHub
from ..web.settings import HttpSettings
from . import api as jobs_api
from . import events, flows, limits, models, ops, problems
from . import metrics as metrics_routes
from .batching import EnqueueBatcher

DESCRIPTION = """\
Accept jobs in milliseconds; follow them by polling, Server-Sent Events or signed webhooks.

* **Enqueue**: `POST /v1/tasks/{task}/jobs` answers `202 Accepted` with `Location` (the
  job's status) and `Retry-After`. Only tasks registered with `expose=True` exist here.
  Send `Idempotency-Key` to make retries safe.
* **Follow**: `GET /v1/jobs/{id}` (`?wait=` long-polls), `GET /v1/jobs/{id}/events` (SSE,
  resumable with `Last-Event-ID`), `GET /v1/jobs/{id}/result`.
* **Errors** are `application/problem+json` (RFC 9457); `type` names the kind.
* **Auth**: `Authorization: Bearer TOKEN`; `read` tokens see, `admin` tokens also act.
"""


@asynccontextmanager
async def _lifespan(api: FastAPI) -> AsyncIterator[None]:
    api.state.hub.start()  # plugins that follow the event stream follow it from now on
    await metrics_routes.start_up(api.state.conveyor)  # counters count from now on
    yield
    # open streams end so the server can stop; the conveyor app belongs to the caller
    await api.state.hub.aclose()


def create_app(conveyor: Conveyor, settings: HttpSettings | None = None) -> FastAPI:
    """The HTTP API (and, once present, the dashboard) for one conveyor app."""
    settings = settings or HttpSettings.from_env()
    api = FastAPI(title="conveyor", version=__version__, description=DESCRIPTION,
                  lifespan=_lifespan)
    api.state.conveyor = conveyor
    api.state.settings = settings
    if conveyor.plugin(Metrics.name) is None:  # the server always has /metrics
        conveyor.install(Metrics())
    api.state.hub = EventHub(conveyor)
    api.state.batcher = EnqueueBatcher(conveyor)
    problems.install(api)
    problems.tidy_openapi(api, [models.EnqueueRequest])
    api.add_middleware(problems.BodyLimit, limit=settings.max_body_bytes)
    if settings.open:  # no auth: keep other web pages out (CSRF, DNS rebinding)
        api.add_middleware(OpenModeGuard, allowed_hosts=settings.allowed_hosts)
    api.router.routes.append(jobs_api.accept_route())  # first: the hot path
    api.include_router(ops.router)
    api.include_router(jobs_api.router, prefix="/v1")
    api.include_router(events.router, prefix="/v1")
    api.include_router(limits.router, prefix="/v1")
    api.include_router(flows.router, prefix="/v1")
    for plugin in conveyor.plugins:  # webhooks, metrics, schedules, yours
        wrap = plugin.http_middleware()  # ASGI middleware (tracing)
        if wrap is not None:
            middleware, options = wrap
            api.add_middleware(middleware, **options)
        routes = plugin.router()
        if routes is not None:
            api.include_router(routes, prefix=plugin.router_prefix)
    from ..dashboard import create_dashboard  # not at the top: the dashboard imports us

    api.mount("/dashboard", create_dashboard(conveyor, settings, hub=api.state.hub))
    return api
