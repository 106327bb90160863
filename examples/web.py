"""The example app's web page: a "Generate Report" button that submits the report job and
follows it live, served beside conveyor's HTTP API.

    CONVEYOR_OPEN=1 uvicorn examples.web:web     # page at /, the API at /api (no auth:
                                                 # loopback only), plus a worker:
    conveyor worker examples.reports:app
    conveyor dev                                 # or both at once: page on port 8001

The page is plain HTML, CSS and JavaScript (examples/static/): no build step, no CDN. It
shows how a web app mounts conveyor (``web.mount("/api", create_app(app))``) and how a
browser client should follow a job: Idempotency-Key per report, SSE with a polling
fallback, and a time limit so that it never spins forever. It also receives the example
app's webhooks at /hooks (see examples/reports.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import socket
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from conveyor import Conveyor, webhooks
from conveyor.http import HttpSettings, create_app
from conveyor.web import hub
from examples import reports

STATIC = Path(__file__).resolve().parent / "static"
PAGE_TIMEOUT = 120  # seconds the page follows a report before it says so and stops


def create_web(conveyor: Conveyor | None = None, settings: HttpSettings | None = None, *,
               api_prefix: str = "/api", timeout: float = PAGE_TIMEOUT) -> FastAPI:
    """The page at ``/`` and conveyor's HTTP API mounted at `api_prefix`."""
    conveyor = conveyor or reports.app
    web = FastAPI(title="conveyor example: Generate Report", docs_url=None, redoc_url=None,
                  openapi_url=None)
    page = (STATIC / "report.html").read_text().replace(
        "{{API}}", html.escape(api_prefix)).replace("{{TIMEOUT}}", f"{timeout:g}")

    @web.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})

    _add_receiver(web, conveyor)
    web.mount("/static", StaticFiles(directory=STATIC), name="static")
    web.mount(api_prefix, create_app(conveyor, settings))
    return web


def _add_receiver(web: FastAPI, conveyor: Conveyor) -> None:
    """A webhook receiver to try webhooks on one machine: POST /hooks takes a delivery and
    checks its Standard Webhooks signature; GET /hooks lists the last 50, newest first."""
    received: deque[dict[str, object]] = deque(maxlen=50)

    @web.post("/hooks", status_code=204, include_in_schema=False)
    async def receive(request: Request) -> Response:
        body = await request.body()
        hooks = webhooks.webhooks_of(conveyor)
        message_id = request.headers.get("webhook-id", "")
        stamp = request.headers.get("webhook-timestamp", "")
        sent = set(request.headers.get("webhook-signature", "").split())
        verified = hooks is not None and stamp.isdigit() and bool(sent & set(webhooks.sign(
            hooks.config.secrets, message_id, int(stamp), body).split()))
        received.appendleft({"webhook_id": message_id, "verified": verified,
                             "payload": json.loads(body or b"null")})
        return Response(status_code=204)

    @web.get("/hooks", include_in_schema=False)
    async def deliveries() -> list[dict[str, object]]:
        return list(received)


class _QuietServer(uvicorn.Server):
    """Leaves signals to the host program (`conveyor dev`'s worker owns them)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_beside(conveyor: Conveyor, sock: socket.socket,
                       settings: HttpSettings) -> None:
    """Serve the page (and its API) on the running loop until cancelled."""
    config = uvicorn.Config(create_web(conveyor, settings), log_level="warning",
                            access_log=False, lifespan="on", timeout_graceful_shutdown=5)
    server = _QuietServer(config)
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        hub.shutdown_all()  # open SSE streams would hold up the shutdown
        server.should_exit = True
        await task
        raise


web = create_web()
