"""The HTTP service: an ASGI app (FastAPI) that accepts jobs with 202 Accepted and lets
clients follow them by polling, Server-Sent Events or signed webhooks; plus /metrics,
health checks and the dashboard, all in one app.

    from conveyor.http import create_app
    api = create_app(app)                 # serve with uvicorn, or
    my_fastapi.mount("/jobs", api)        # mount into your own app

Modules, one concern each (settings, auth, the event hub: conveyor.web, shared with the
dashboard):
    problems.py   RFC 9457 errors               api.py      /v1 jobs and queues
    events.py     SSE and long polls            ops.py      /healthz, /readyz
    metrics.py    /metrics                      webhooks.py signed deliveries
"""

from __future__ import annotations

from .. import extras

try:
    from ..web.settings import HttpSettings, Scope
    from .app import create_app
except ModuleNotFoundError as exc:
    extras.missing("conveyor.http", "server", exc)

__all__ = ["HttpSettings", "Scope", "create_app"]
