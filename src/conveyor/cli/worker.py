"""``conveyor worker``: run jobs until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from ..worker import Worker
from ._root import cli
from .common import AppArg, Concurrency, LogLevel, LogLevelOpt, configure_logging, load, queue_names
from .running import run_worker


@cli.command()
def worker(
    ctx: typer.Context,
    app_path: AppArg = None,
    queues: Annotated[list[str] | None, typer.Option(
        "--queues", "-q", envvar="CONVEYOR_QUEUES",
        help="Comma-separated queues; default: every queue of the app's tasks.")] = None,
    concurrency: Concurrency = 10,
    lease: Annotated[float, typer.Option(
        envvar="CONVEYOR_LEASE", help="Seconds a claim lasts between renewals.")] = 30.0,
    grace: Annotated[float, typer.Option(
        envvar="CONVEYOR_GRACE", min=0, help="Seconds running jobs get on shutdown.")] = 30.0,
    process_workers: Annotated[int | None, typer.Option(
        envvar="CONVEYOR_PROCESS_WORKERS", min=1,
        help="Child processes for executor='process' tasks (default: CPU count).")] = None,
    log_level: LogLevelOpt = LogLevel.INFO,
) -> None:
    """Run a worker until SIGTERM/SIGINT (graceful: running jobs get --grace seconds)."""
    app = load(ctx, need_tasks=True, app_path=app_path)
    names = queue_names(queues) or app.queue_names
    configure_logging(log_level)
    work = Worker(app, names, concurrency=concurrency, lease=lease, grace=grace,
                  process_workers=process_workers)
    asyncio.run(run_worker(app, work))
