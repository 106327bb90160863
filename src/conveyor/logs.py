"""How conveyor's processes log: one shape for ``conveyor worker``, ``serve`` and ``dev``.

    conveyor worker APP --log-format json      # JSON lines: timestamp, level, logger, message
    conveyor worker APP --store-job-logs       # tasks' own log records kept with their job

- Every record emitted while a job runs (by conveyor or by your own loggers, in an
  ``async def`` task, a thread or a process-executor child) carries the job's ``job_id``,
  ``task``, ``queue`` and ``attempt``: `JobFields` reads them from the running job's
  context variable. Text lines end with ``[job ID task=T queue=Q attempt=N]``.
- `JobLog` middleware writes one INFO line per finished attempt (logger
  ``conveyor.jobs``) with its ``outcome``, ``duration`` and ``wait`` (seconds from due
  to started).
- `StoreJobLogs` (opt-in) also keeps the task's own records (not conveyor's) with the
  job, as `conveyor.log()` does.

Processes started by another (process-executor children, supervised worker processes,
``serve``'s server processes) set themselves up from ``CONVEYOR_LOG_LEVEL``,
``CONVEYOR_LOG_FORMAT`` and ``CONVEYOR_STORE_JOB_LOGS``, which the CLI exports.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .context import job_context
from .jobs import Job
from .outcomes import Cancel, NonRetryableError, Retry

if TYPE_CHECKING:
    from .app import Conveyor

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
JOB_FIELDS = ("job_id", "task", "queue", "attempt")
FORMATS = ("text", "json")
OWN_LOGGERS = "conveyor"  # records of these loggers are never stored with a job
ENV_LEVEL, ENV_FORMAT, ENV_STORE = (
    "CONVEYOR_LOG_LEVEL", "CONVEYOR_LOG_FORMAT", "CONVEYOR_STORE_JOB_LOGS")


class JobFields(logging.Filter):
    """Adds the running job's fields to each record (a handler filter: it sees the records
    of every logger, the user's own included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "job_id", None) is None:
            ctx = job_context()
            if ctx is not None:
                job = ctx.job
                record.job_id, record.task = job.id, job.task
                record.queue, record.attempt = job.queue, job.attempt
        return True


class TextFormatter(logging.Formatter):
    """The classic line, plus the job's fields while a job runs."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        job_id = getattr(record, "job_id", None)
        if job_id is None:
            return line
        return (f"{line} [job {job_id} task={getattr(record, 'task', '')} "
                f"queue={getattr(record, 'queue', '')} attempt={getattr(record, 'attempt', '')}]")


def json_formatter() -> logging.Formatter:
    """JSON lines: timestamp (UTC ISO 8601), level, logger, message, then any extra field
    (the job's, the per-job line's)."""
    from pythonjsonlogger.core import RESERVED_ATTRS
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter("%(levelname)s %(name)s %(message)s", timestamp=True,
                         rename_fields={"levelname": "level", "name": "logger"},
                         # uvicorn's copy of the message with terminal colours
                         reserved_attrs=[*RESERVED_ATTRS, "color_message"])


class StoreJobLogs(logging.Handler):
    """Keeps the records a task's own code emits (not conveyor's) with its job, like
    `conveyor.log()`: seen in ``conveyor job ID``, the dashboard and the event stream."""

    def __init__(self, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == OWN_LOGGERS or record.name.startswith(OWN_LOGGERS + "."):
            return
        ctx = job_context()
        if ctx is None:
            return
        try:
            ctx.report("log", self.format(record))
        except Exception:
            self.handleError(record)


def configure_logging(level: str = "info", fmt: str = "text", *,
                      store_job_logs: bool = False) -> None:
    """Log records of `level` and above to stderr in `fmt`, with the job's fields."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(json_formatter() if fmt == "json" else TextFormatter())
    handler.addFilter(JobFields())
    handlers: list[logging.Handler] = [handler]
    if store_job_logs:
        handlers.append(StoreJobLogs(logging.getLevelName(level.upper())))
    logging.basicConfig(level=level.upper(), handlers=handlers, force=True)


def export_settings(level: str, fmt: str, store_job_logs: bool) -> None:
    """Put the settings where the processes this one starts find them."""
    os.environ[ENV_LEVEL] = level
    os.environ[ENV_FORMAT] = fmt
    os.environ[ENV_STORE] = "1" if store_job_logs else ""


def configure_from_env() -> None:
    """Set up like the process that started this one, if it was the CLI (else leave the
    logging configuration alone: a library user's children are theirs)."""
    fmt = os.environ.get(ENV_FORMAT)
    if fmt:
        configure_logging(os.environ.get(ENV_LEVEL) or "info", fmt,
                          store_job_logs=bool(os.environ.get(ENV_STORE)))


# -- one line per finished attempt -----------------------------------------------------
job_log = logging.getLogger("conveyor.jobs")


class JobLog:
    """Middleware: one INFO line per finished attempt, with its outcome, how long it ran
    and how long it waited after it was due."""

    async def around_job(self, job: Job, call_next: Callable[[], Awaitable[Any]]) -> Any:
        started = time.perf_counter()
        outcome = "completed"
        try:
            return await call_next()
        except BaseException as exc:
            outcome = attempt_outcome(job, exc)
            raise
        finally:
            _line(job, outcome, time.perf_counter() - started)


def install_job_log(app: Conveyor) -> None:
    """Add `JobLog` to the app, unless its lines would be dropped anyway (a worker run at
    ``--log-level warning`` pays nothing per job for it)."""
    if job_log.isEnabledFor(logging.INFO):
        app.add_middleware(JobLog())


def attempt_outcome(job: Job, exc: BaseException) -> str:
    """What an attempt that raised `exc` comes to (as the worker will settle it)."""
    if not isinstance(exc, Exception):
        return "stopped"  # cancelled by the worker: shutdown, a cancel request, a lost lease
    if isinstance(exc, Cancel):
        return "cancelled"
    if isinstance(exc, Retry):
        return "retrying"
    if isinstance(exc, NonRetryableError) or job.attempt >= job.max_attempts:
        return "failed"
    return "retrying"


def _line(job: Job, outcome: str, duration: float) -> None:
    if not job_log.isEnabledFor(logging.INFO):
        return
    wait = None if job.started_at is None else max(job.started_at - job.scheduled_at, 0) / 1000
    job_log.info("%s %s in %.3fs (waited %ss)", job.task, outcome, duration,
                 "?" if wait is None else f"{wait:.3f}",
                 extra={"job_id": job.id, "task": job.task, "queue": job.queue,
                        "attempt": job.attempt, "outcome": outcome,
                        "duration": round(duration, 6), "wait": wait})
