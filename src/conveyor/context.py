"""What a running task knows about its own job, and how it reports back.

Inside a task (``async def``, ``def`` in a thread, or a process-executor child):

    from conveyor import current_job, progress, log

    progress(40)                      # a number (percent) or any JSON value
    log("called the scoring API")     # kept with the job and streamed live
    if current_job().cancelled:       # a ``def`` task checks this to stop early
        return

Reports of one job are sent in order and before the job's outcome is recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from .errors import ConveyorError
from .jobs import Job


@dataclass
class JobContext:
    """The running attempt of one job."""

    job: Job
    # called with ("progress" | "log", value) from any thread; set by whoever runs the job
    report: Callable[[str, Any], None]
    cancel_requested: bool = False  # set by the worker; a plain flag is enough under the GIL
    # flows: each dependency's {task, state, result, error}, read before the attempt
    dependencies: dict[str, dict[str, Any]] | None = None

    @property
    def id(self) -> str:
        return self.job.id

    @property
    def attempt(self) -> int:
        return self.job.attempt

    def dependency_results(self) -> dict[str, Any]:
        """Results of the dependencies that completed, by job id, in the flow's order
        ({} for a job without dependencies)."""
        return {k: d["result"] for k, d in (self.dependencies or {}).items()
                if d["state"] == "completed"}

    def dependency_failures(self) -> dict[str, dict[str, Any] | None]:
        """The last error of each dependency that did not complete (a flow's callback
        with on_failure="continue" runs after failures too)."""
        return {k: d["error"] for k, d in (self.dependencies or {}).items()
                if d["state"] != "completed"}

    @property
    def cancelled(self) -> bool:
        """True once a cancel was requested; ``def`` tasks should check it and return."""
        return self.cancel_requested


_current: ContextVar[JobContext | None] = ContextVar("conveyor_current_job", default=None)


def current_job() -> JobContext:
    """The job being run by the calling task; ConveyorError outside a task."""
    ctx = _current.get()
    if ctx is None:
        raise ConveyorError("current_job() called outside a running task")
    return ctx


def job_context() -> JobContext | None:
    """The running job's context, or None outside a task (for logging filters)."""
    return _current.get()


def progress(value: Any) -> None:
    """Report progress: a number (read as percent) or any JSON value."""
    current_job().report("progress", value)


def log(message: str) -> None:
    """Add a line to the job's log."""
    current_job().report("log", str(message))


def set_current(ctx: JobContext | None) -> Any:
    return _current.set(ctx)


def reset_current(token: Any) -> None:
    _current.reset(token)
