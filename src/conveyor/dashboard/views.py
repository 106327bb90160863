"""The dashboard's shared pieces: its state object, template rendering with the context
every page needs (who is signed in, the CSRF token, the mount's base path, the flash
message), and the error pages.

Every link is built from `base`, the path the dashboard is mounted at, so it works at
/dashboard, at any prefix in a user's own app, or at the root.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from ..app import Conveyor
from ..backends.base import STALE_AFTER_MS, Backend, QueueInfo, WorkerInfo
from ..jobs import JobState
from ..web.keys import client_keys
from ..web.settings import HttpSettings
from . import format as fmt
from . import tracebacks
from .live import Live
from .revocation import Revocations
from .session import principal, session_of
from .throttle import LoginThrottle

HERE = Path(__file__).parent


@dataclass
class Dashboard:
    conveyor: Conveyor
    settings: HttpSettings
    templates: Jinja2Templates
    live: Live
    revocations: Revocations
    throttle: LoginThrottle = field(default_factory=LoginThrottle)

    async def backend(self) -> Backend:
        return await self.live.backend()


def dashboard_of(conn: HTTPConnection) -> Dashboard:
    dash: Dashboard = conn.app.state.dashboard
    return dash


def base_path(conn: HTTPConnection) -> str:
    """Where the dashboard is mounted, without the trailing slash ("" at the root)."""
    root: str = conn.scope.get("root_path") or ""
    return root.rstrip("/")


def make_templates() -> Jinja2Templates:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(duration=fmt.duration, iso=fmt.iso, pretty=fmt.pretty,
                       compact=fmt.compact, count=fmt.count, error_line=fmt.error_line,
                       backoff=fmt.backoff, zip=fmt.pairs)
    env.globals.update(ago=fmt.ago, call=fmt.call, progress_of=fmt.progress, STATES=fmt.STATES,
                       JobState=JobState, STALE_AFTER_MS=STALE_AFTER_MS,
                       live_workers=live_workers, client_keys=client_keys,
                       traceback_blocks=tracebacks.blocks)
    return Jinja2Templates(env=env)


def page_context(request: HTTPConnection) -> dict[str, Any]:
    dash = dashboard_of(request)
    session = session_of(request)
    who = principal(dash.settings, session)
    return {
        "request": request,
        "base": base_path(request),
        "who": who,
        "can_act": who is not None and who.is_admin,
        "open_mode": dash.settings.open,
        "csrf": session.csrf,
    }


def render(request: Request, template: str, *, status_code: int = 200,
           **context: Any) -> Response:
    ctx = page_context(request)
    ctx["flash"] = session_of(request).pop_flash()
    ctx.setdefault("now", context.pop("now", None))
    ctx.setdefault("dead", context.pop("dead", None))
    ctx.update(context)
    return dashboard_of(request).templates.TemplateResponse(request, template, ctx,
                                                            status_code=status_code)


def fragment(conn: HTTPConnection, template: str, **context: Any) -> str:
    """One live-updated block of a page, rendered to a string for an SSE message."""
    ctx = page_context(conn)
    ctx.update(context)
    tpl = dashboard_of(conn).templates.env.get_template(template)
    return tpl.render(ctx)


def error_page(request: Request, status: int, title: str, detail: str, **extra: Any) -> Response:
    return render(request, "error.html", status_code=status, code=status, title=title,
                  detail=detail, **extra)


# -- shaping snapshot data for the templates --------------------------------------------
def live_workers(workers: list[WorkerInfo], now: int) -> list[WorkerInfo]:
    return [w for w in workers if not w.is_stale(now)]


def queue_rows(queues: list[QueueInfo], workers: list[WorkerInfo], now: int,
               known: list[str]) -> list[dict[str, Any]]:
    """One row per queue (those with jobs, paused ones and those the app's tasks use)."""
    alive = live_workers(workers, now)
    by_name = {q.name: q for q in queues}
    for name in known:
        by_name.setdefault(name, QueueInfo(name, {s: 0 for s in JobState}, False, None))
    rows = []
    for name in sorted(by_name):
        info = by_name[name]
        consumers = [w for w in alive if name in w.queues]
        wait_ms = None if info.oldest_waiting_at is None else now - info.oldest_waiting_at
        pending = info.counts.get(JobState.WAITING, 0)
        rows.append({
            "name": name, "counts": info.counts, "paused": info.paused,
            "workers": len(consumers),
            "slots": sum(w.concurrency for w in consumers),
            "oldest_wait_ms": wait_ms,
            "wait_level": "" if wait_ms is None else (
                "bad" if wait_ms > 600_000 else "warn" if wait_ms > 60_000 else ""),
            "unserved": pending > 0 and not consumers and not info.paused,
        })
    return rows


def totals(queues: list[QueueInfo]) -> dict[JobState, int]:
    out = dict.fromkeys(JobState, 0)
    for info in queues:
        for state, n in info.counts.items():
            out[state] += n
    return out
