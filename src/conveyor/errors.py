"""Every error conveyor raises, under one root.

    ConveyorError
    ├── ConfigurationError        a bad backend URL, app path, setting, plugin or middleware
    │   ├── WorkerStartError      a worker start hook raised: the worker did not start
    │   └── MissingExtraError     a part whose optional dependencies are not installed
    ├── InvalidJobError           a job that must not be stored; nothing was written
    │   ├── UnknownTaskError      no task registered under that name
    │   ├── ArgumentsError        arguments that do not fit the task's signature, or are not JSON
    │   ├── PayloadTooLargeError  encoded arguments over the configured limit
    │   ├── InvalidOptionError    a bad delay, priority, attempts, backoff, timeout, ...
    │   └── InvalidFlowError      a flow with a cycle, an unknown parent, a bad edge
    ├── InvalidRequestError       a bad cursor, filter or selection in a query
    │   ├── UnknownQueueError     no queue of that name (no jobs, not paused, no task uses it)
    │   └── UnknownLimiterError   no stored limiter of that name (a worker stores them)
    ├── QueueNotEmptyError        a queue that still holds jobs cannot be deleted
    ├── JobNotFoundError          no job with that id
    │   └── JobRemovedError       the job existed but was removed (retention or explicit)
    ├── JobStateError             the job is not in a state that allows the action
    ├── JobFailedError            awaited result of a job that ended failed
    ├── JobCancelledError         awaited result of a job that ended cancelled
    ├── ScheduleNotFoundError     no schedule with that name
    ├── ScheduleConflictError     a schedule name taken, or a schedule changed under the call
    ├── ResultTimeoutError        the job did not finish within the wait
    └── BackendError              the storage engine failed or cannot be reached
        ├── StorageFullError      the engine's disk (or memory) is full: nothing was written
        └── BackendUnavailableError   not reachable, read-only, I/O errors, locked too long
            └── EnqueueOutcomeUnknownError  sent, but no answer: maybe stored (job_ids)

Every subclass carries a one-line message meant for a person; the CLI prints it as is and
the HTTP layer maps the tree onto problem+json status codes.
"""

from __future__ import annotations

from typing import Any


class ConveyorError(Exception):
    """Root of every error conveyor raises on purpose."""


class ConfigurationError(ConveyorError):
    """A bad backend URL, app import path or setting."""


class WorkerStartError(ConfigurationError):
    """A worker start hook (``@app.on_worker_start``) raised; the worker did not start."""


class MissingExtraError(ConfigurationError, ImportError):
    """A part of conveyor was imported without the extra that installs its dependencies.

    Also an `ImportError`, so ``try: import conveyor.http except ImportError`` still works.
    """

    def __init__(self, part: str, extra: str, missing: str) -> None:
        super().__init__(
            f"{part} needs the {extra!r} extra ({missing} is not installed): "
            f"pip install 'conveyor[{extra}]'"
        )
        self.extra = extra


class InvalidJobError(ConveyorError):
    """A job that was refused before anything was stored."""


class UnknownTaskError(InvalidJobError):
    def __init__(self, name: str, known: list[str] | None = None) -> None:
        hint = f" (known: {', '.join(sorted(known))})" if known else ""
        super().__init__(f"unknown task {name!r}{hint}")
        self.name = name


class ArgumentsError(InvalidJobError):
    """Arguments that do not fit the task's signature or cannot be encoded as JSON.

    `errors` lists field problems as ``{"loc": [...], "msg": "..."}`` for the HTTP layer.
    """

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class PayloadTooLargeError(InvalidJobError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"job payload is {size} bytes, over the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class InvalidOptionError(InvalidJobError):
    """A bad job or task option: negative delay, zero attempts, malformed backoff..."""


class InvalidFlowError(InvalidJobError):
    """A flow that cannot be stored as built (conveyor/flows): nothing of it was written."""


class InvalidRequestError(ConveyorError):
    """A bad cursor, filter or selection in a query."""


class UnknownQueueError(InvalidRequestError):
    """A queue name that is no queue: it has no jobs, is not paused and no task uses it."""


class UnknownLimiterError(InvalidRequestError):
    """No stored limiter of that name (in that queue): a worker stores its app's declared
    limiters when it starts."""


class QueueNotEmptyError(ConveyorError):
    """A queue that still holds jobs cannot be deleted."""


class JobNotFoundError(ConveyorError):
    def __init__(self, job_id: str, message: str | None = None) -> None:
        super().__init__(message or f"no job with id {job_id!r}")
        self.job_id = job_id


class JobRemovedError(JobNotFoundError):
    def __init__(self, job_id: str) -> None:
        super().__init__(job_id, f"job {job_id!r} was removed")


class JobStateError(ConveyorError):
    """The job is not in a state that allows the action (e.g. retrying a completed job)."""


class JobFailedError(ConveyorError):
    """The awaited job ended in the dead-letter set; `error` is its last error entry."""

    def __init__(self, job_id: str, error: dict[str, Any] | None) -> None:
        detail = f"{error.get('type')}: {error.get('message')}" if error else "no error recorded"
        super().__init__(f"job {job_id} failed: {detail}")
        self.job_id = job_id
        self.error = error


class JobCancelledError(ConveyorError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} was cancelled")
        self.job_id = job_id


class ScheduleNotFoundError(ConveyorError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no schedule named {name!r}")
        self.name = name


class ScheduleConflictError(ConveyorError):
    """A schedule name is taken already, or the schedule kept changing under the call."""


class ResultTimeoutError(ConveyorError, TimeoutError):
    def __init__(self, job_id: str, timeout: float, state: str) -> None:
        super().__init__(f"job {job_id} did not finish within {timeout:g}s (state: {state})")
        self.job_id = job_id
        self.state = state


class BackendError(ConveyorError):
    """The storage engine failed."""


class BackendUnavailableError(BackendError):
    """The storage engine cannot be reached or stayed locked past the retry deadline."""


class StorageFullError(BackendError):
    """The storage engine has no room left (disk full, or Redis at maxmemory): the call
    changed nothing. Free space and try again."""


class EnqueueOutcomeUnknownError(BackendUnavailableError):
    """An enqueue reached the backend but its answer did not come back (a frozen server, a
    connection lost after sending): the jobs may or may not be stored.

    Their ids were made before sending (`job_ids`), and enqueueing the same prepared jobs
    again is idempotent on every backend, so the safe retry is to send the same jobs (over
    HTTP: the same request with the same Idempotency-Key)."""

    def __init__(self, message: str, job_ids: list[str]) -> None:
        super().__init__(message)
        self.job_ids = job_ids
