"""``conveyor check``: is the backend reachable, and (``--worker``) are this host's worker
processes heartbeating? Exit 0 with a line per check, or 1 with one line saying why not:
for container health checks, liveness probes and deploy scripts."""

from __future__ import annotations

import asyncio
import socket
from typing import Annotated

import typer

from ..app import Conveyor
from ..backends.base import STALE_AFTER_MS
from . import render
from ._root import cli, fail
from .common import load, quiet_durability


class CheckFailed(Exception):
    """A check that did not pass: its message is the one line the command prints."""


async def _probe(app: Conveyor, timeout: float, worker: bool) -> list[str]:
    try:
        await asyncio.wait_for(app.aopen(), timeout)
        now = await asyncio.wait_for(app.backend.now(), timeout)
        workers = await asyncio.wait_for(app.backend.workers(), timeout) if worker else []
    except Exception as exc:
        reason = str(exc) or type(exc).__name__
        raise CheckFailed(f"backend {app.url} unreachable: {reason}") from None
    finally:
        await app.aclose()
    lines = [f"ok: backend {app.url} answers"]
    if worker:
        host = socket.gethostname()
        mine = [w for w in workers if w.host == host and not render.is_stale(w, now)]
        if not mine:
            raise CheckFailed(f"no worker process on host {host} has sent a heartbeat in the "
                              f"last {STALE_AFTER_MS // 1000} s")
        lines.append(f"ok: {len(mine)} worker process(es) on host {host} heartbeating")
    return lines


@cli.command()
def check(
    ctx: typer.Context,
    worker: Annotated[bool, typer.Option(
        "--worker", help="Also require a heartbeating worker process on this host.")] = False,
    timeout: Annotated[float, typer.Option(
        envvar="CONVEYOR_CHECK_TIMEOUT", min=0.1, help="Seconds each backend call may take.")
    ] = 5.0,
) -> None:
    """Exit 0 if the backend answers (and, with --worker, this host's workers heartbeat)."""
    app = load(ctx)
    try:
        with quiet_durability():  # a probe stores nothing: no advice about losing data
            lines = asyncio.run(_probe(app, timeout, worker))
    except CheckFailed as exc:
        fail(str(exc), 1)
    for line in lines:
        typer.echo(line)
