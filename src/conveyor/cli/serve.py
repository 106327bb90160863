"""``conveyor serve``: the HTTP API on uvicorn, in one or more server processes."""

from __future__ import annotations

import logging
import os
from typing import Annotated

import typer

from .. import loops
from ._root import cli
from .common import (
    AppArg,
    LogFormat,
    LogFormatOpt,
    LogLevel,
    LogLevelOpt,
    LoopChoice,
    LoopOpt,
    configure_logging,
    load,
)


@cli.command()
def serve(
    ctx: typer.Context,
    app_path: AppArg = None,
    host: Annotated[str, typer.Option(envvar="CONVEYOR_HOST", help="Address to bind.")
                    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="CONVEYOR_PORT", min=0, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(
        envvar="CONVEYOR_WEB_WORKERS", min=1, help="Server processes.")] = 1,
    access_log: Annotated[bool, typer.Option(
        "--access-log", envvar="CONVEYOR_ACCESS_LOG", help="Log every request.")] = False,
    log_level: LogLevelOpt = LogLevel.INFO,
    log_format: LogFormatOpt = LogFormat.TEXT,
    loop: LoopOpt = LoopChoice.AUTO,
) -> None:
    """Serve the HTTP API (uvicorn) until SIGTERM/SIGINT: enqueue, status, SSE, control.

    Tokens: CONVEYOR_TOKENS="admin:TOKEN,read:TOKEN". Without auth: CONVEYOR_OPEN=1 (loopback only).
    """
    from ..http import serve as server
    from ..web.settings import HttpSettings

    app = load(ctx, need_tasks=True, app_path=app_path)
    configure_logging(log_level, log_format)  # uvicorn's records too: same shape as a worker
    # the server processes build the app again from the environment (uvicorn's factory)
    os.environ["CONVEYOR_APP"] = app_path or ctx.obj.app_path or ""
    os.environ["CONVEYOR_URL"] = app.url
    warning = server.check_exposure(HttpSettings.from_env(), host)
    if warning:
        logging.getLogger("conveyor.serve").warning("conveyor serve: %s", warning)
    server.run(host, port, workers, log_level=log_level.value, access_log=access_log,
               loop=loops.resolve(loop.value))

