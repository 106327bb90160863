"""What the CLI's commands share: the global options, finding the app and connecting to
its backend, and the option types several commands take.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Annotated

import typer

from .. import logs
from ..app import Conveyor
from ..backends.base import JobFilter
from ..errors import ConfigurationError, InvalidRequestError
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
def connected(ctx: typer.Context, *, need_tasks: bool = False,
              read_only: bool = False) -> Iterator[Conveyor]:
    """The app, open on its backend for the command. A `read_only` command does not warn
    about the backend's durability settings: it stores nothing they could lose."""
    app = load(ctx, need_tasks=need_tasks)
    with quiet_durability() if read_only else contextlib.nullcontext():
        app.open()
        try:
            yield app
        finally:
            app.close()


@contextlib.contextmanager
def quiet_durability() -> Iterator[None]:
    """No durability warnings (the Redis backend's) while the block runs."""
    logger = logging.getLogger("conveyor.backends.redis")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


FULL_ID = 36  # a job id's length: a shorter one is a piece to look up
ID_PAGE = 500


def find_job_id(app: Conveyor, given: str) -> str:
    """The id of the one job whose id starts or ends with `given` (what lists show: the
    dashboard's "…1a2b3c4d5e6f", an id cut short); `given` itself when it is a whole id
    or matches none (the command then says no such job), an error when it matches several."""
    piece = given.strip().lstrip("…").lower()
    if len(piece) >= FULL_ID or not piece:
        return given
    matches: list[str] = []
    cursor = None
    while True:
        page = app.run_sync(app.backend.list_jobs, JobFilter(search=piece), ID_PAGE, cursor)
        matches += [j.id for j in page.jobs if j.id.startswith(piece) or j.id.endswith(piece)]
        cursor = page.next_cursor
        if cursor is None or len(matches) > 1:
            break
    if len(matches) > 1:
        raise InvalidRequestError(f"{given!r} is the start or end of more than one job id "
                                  f"({', '.join(matches[:3])}...): give more of it")
    return matches[0] if matches else given


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
JobId = Annotated[str, typer.Argument(
    metavar="ID", help="A job id, or its start or end (as lists show it).", show_default=False)]
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
LogJobsOpt = Annotated[bool, typer.Option(
    "--log-jobs", envvar="CONVEYOR_LOG_JOBS",
    help="One INFO line per finished attempt (outcome, duration, wait). Off by default: "
         "it costs about a third of a no-op job's worker CPU.")]
StoreJobLogsOpt = Annotated[bool, typer.Option(
    "--store-job-logs", envvar="CONVEYOR_STORE_JOB_LOGS",
    help="Also keep tasks' own log records with their job (like log()).")]
