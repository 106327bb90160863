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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .errors import ConveyorError
from .jobs import Job

if TYPE_CHECKING:
    from .backends.base import NewJob


class FlowAccess(Protocol):
    """What a running job may ask of its flow (the worker's executor provides it)."""

    def dependencies(self) -> dict[str, dict[str, Any]]: ...

    def spawn(self, jobs: tuple[NewJob, ...]) -> list[str]: ...


@dataclass
class JobContext:
    """The running attempt of one job."""

    job: Job
    # called with ("progress" | "log", value) from any thread; set by whoever runs the job
    report: Callable[[str, Any], None]
    cancel_requested: bool = False  # set by the worker; a plain flag is enough under the GIL
    # flows: each dependency's {task, state, result, error}, read before the attempt or,
    # failing that, on first use through `flows` (set by the worker)
    dependencies: dict[str, dict[str, Any]] | None = None
    flows: FlowAccess | None = None
    spawned: list[str] = field(default_factory=list)  # ids of children spawned

    @property
    def id(self) -> str:
        return self.job.id

    @property
    def attempt(self) -> int:
        return self.job.attempt

    def _dependencies(self) -> dict[str, dict[str, Any]]:
        if self.dependencies is None and self.flows is not None:
            self.dependencies = self.flows.dependencies()
        return self.dependencies or {}

    def dependency_results(self) -> dict[str, Any]:
        """Results of the dependencies that completed, by job id, in the flow's order
        ({} for a job without dependencies). After `spawn`, the next run sees its
        children here."""
        return {k: d["result"] for k, d in self._dependencies().items()
                if d["state"] == "completed"}

    def dependency_failures(self) -> dict[str, dict[str, Any] | None]:
        """The last error of each dependency that did not complete (a flow's callback
        with on_failure="continue" runs after failures too)."""
        return {k: d["error"] for k, d in self._dependencies().items()
                if d["state"] != "completed"}

    def spawn(self, *jobs: NewJob) -> list[str]:
        """Store prepared jobs (``task.prepare(...)``) as children of this job: when this
        attempt returns, the job waits for them and then runs again, its children's
        results in `dependency_results()` (so a task that spawns checks those first).
        Not in process-executor tasks. Returns the children's ids."""
        if self.flows is None:
            raise ConveyorError("spawn() needs a task run by a worker's async or thread "
                                "executor")
        ids = self.flows.spawn(jobs)
        self.spawned += ids
        return ids

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
