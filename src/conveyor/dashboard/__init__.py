"""The operator's dashboard: every queue, job and worker, and the actions that fix failures,
in the browser. Server-rendered (Jinja2) with live updates over Server-Sent Events.

`conveyor serve` mounts it at /dashboard; mount it anywhere in your own ASGI app with
``app.mount("/ops/jobs", create_dashboard(conveyor, settings))``.

Modules, one concern each:
    app.py       the ASGI app and its error pages     views.py     rendering, shared context
    session.py   signed session cookie                access.py    login, CSRF, roles
    pages.py     the screens (GET)                    actions.py   retry/cancel/... (POST)
    streams.py   SSE blocks for live pages            live.py      event follower, snapshots
    stats.py     throughput per minute                timeline.py  a job's story
    format.py    relative times, durations, JSON      frontend/    npm build of vendor files
"""

from __future__ import annotations

from .. import extras

try:
    from .app import create_dashboard
except ModuleNotFoundError as exc:
    extras.missing("conveyor.dashboard", "server", exc)

__all__ = ["create_dashboard"]
