"""What the CLI's commands share: the global options, finding the app and connecting to
its backend, and the option types several commands take.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Annotated

import typer

from .. import logs
from ..app import Conveyor
from ..errors import ConfigurationError
from ..jobs import FINAL_STATES, JobState
from ..loading import load_app
from ..task import check_options


def note(message: str) -> None:
    """A remark for the person at the terminal (stderr, so stdout stays parseable)."""
    sys.stderr.write(message + "\n")


@dataclasses.dataclass(frozen=True)
class Globals:
    """The options given before the command: which app, which backend."""

    app_path: str | None
    url: str | None


def load(ctx: typer.Context, *, need_tasks: bool = False, app_path: str | None = None,
         default_app: str | None = None, default_url: str | None = None) -> Conveyor:
    """The app the command line names (or a bare one on the backend URL, for commands
    that only read and act on stored jobs)."""
    given: Globals = ctx.obj
    path = app_path or given.app_path or default_app
    url = given.url or default_url
    if url:
        # Conveyor() reads it while the app module imports, and so do the children the
        # process executor spawns: everything this command starts uses the same backend.
        os.environ["CONVEYOR_URL"] = url
    if path is None:
        if need_tasks:
            raise ConfigurationError("this command needs your app: pass --app MODULE:ATTR "
                                     "or set CONVEYOR_APP")
        return Conveyor(url)
    app = load_app(path)
    if url and app.url != url:
        # The app was built with a URL of its own (or imported earlier): --url wins.
        app.use(url)
    return app


@contextlib.contextmanager
def connected(ctx: typer.Context, *, need_tasks: bool = False) -> Iterator[Conveyor]:
    app = load(ctx, need_tasks=need_tasks)
    app.open()
    try:
        yield app
    finally:
        app.close()


class LogLevel(enum.StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class LogFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


def configure_logging(level: LogLevel, fmt: LogFormat = LogFormat.TEXT,
                      store_job_logs: bool = False) -> None:
    """This process's logging, and the same for the processes it starts (see logs.py)."""
    logs.configure_logging(level.value, fmt.value, store_job_logs=store_job_logs)
    logs.export_settings(level.value, fmt.value, store_job_logs)


def queue_names(values: Sequence[str] | None) -> list[str]:
    names = [name.strip() for value in values or () for name in value.split(",")]
    for name in names:
        check_options(queue=name)
    return names


FINISHED = tuple(s for s in JobState if s in FINAL_STATES)
JsonOut = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
QueueOpt = Annotated[str | None, typer.Option("--queue", "-q", help="Only this queue.")]
JobId = Annotated[str, typer.Argument(metavar="ID", help="A job id.", show_default=False)]
AppArg = Annotated[str | None, typer.Argument(
    metavar="APP", show_default=False, help="MODULE:ATTR of your app (or --app / CONVEYOR_APP).")]
Concurrency = Annotated[int, typer.Option(
    "--concurrency", "-c", envvar="CONVEYOR_CONCURRENCY", min=1, help="Jobs run at once.")]
LogLevelOpt = Annotated[LogLevel, typer.Option(envvar="CONVEYOR_LOG_LEVEL", case_sensitive=False)]
LogFormatOpt = Annotated[LogFormat, typer.Option(
    envvar="CONVEYOR_LOG_FORMAT", case_sensitive=False,
    help="text lines, or JSON lines (timestamp, level, logger, message, job fields).")]
class LoopChoice(enum.StrEnum):
    AUTO = "auto"
    ASYNCIO = "asyncio"
    UVLOOP = "uvloop"


LoopOpt = Annotated[LoopChoice, typer.Option(
    "--loop", envvar="CONVEYOR_LOOP", case_sensitive=False,
    help="Event loop; auto: uvloop when installed.")]
StoreJobLogsOpt = Annotated[bool, typer.Option(
    "--store-job-logs", envvar="CONVEYOR_STORE_JOB_LOGS",
    help="Also keep tasks' own log records with their job (like log()).")]
