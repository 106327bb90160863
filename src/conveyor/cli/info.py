"""Commands about the system as a whole: registered workers, and everything at a glance."""

from __future__ import annotations

import typer

from .. import __version__
from . import render
from ._root import cli
from .common import JsonOut, connected


@cli.command()
def workers(ctx: typer.Context, as_json: JsonOut = False) -> None:
    """Registered workers; "stale" ones have not sent a heartbeat for 30 s (STALE_AFTER_MS)."""
    with connected(ctx, read_only=True) as app:
        now = app.run_sync(app.backend.now)
        found = app.run_sync(app.backend.workers)
    if as_json:
        render.print_json([render.worker_data(w, now) for w in found])
    else:
        render.console().print(render.workers_table(found, now))


@cli.command()
def info(ctx: typer.Context, as_json: JsonOut = False) -> None:
    """Version, backend, capabilities, queues and workers at a glance."""
    with connected(ctx, read_only=True) as app:
        now = app.run_sync(app.backend.now)
        found = app.queues()
        registered = app.run_sync(app.backend.workers)
    stale = sum(render.is_stale(w, now) for w in registered)
    data = {
        "version": __version__, "url": app.url, "app": ctx.obj.app_path,
        "capabilities": render.capabilities_data(app.backend.capabilities),
        "tasks": sorted(app.tasks), "queues": [render.queue_data(q, now) for q in found],
        "workers": {"live": len(registered) - stale, "stale": stale},
    }
    if as_json:
        render.print_json(data)
    else:
        render.console().print(render.info_panel(data))


