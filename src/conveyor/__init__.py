"""conveyor: background jobs for Python. Accept in milliseconds, never lose a job."""

from .app import Conveyor
from .backends.base import Backend, Capabilities, JobFilter, Retention
from .context import JobContext, current_job, log, progress
from .dedup import Dedup
from .errors import (
    ArgumentsError,
    BackendError,
    BackendUnavailableError,
    ConfigurationError,
    ConveyorError,
    InvalidFlowError,
    InvalidJobError,
    InvalidOptionError,
    InvalidRequestError,
    JobCancelledError,
    JobFailedError,
    JobNotFoundError,
    JobRemovedError,
    JobStateError,
    PayloadTooLargeError,
    ResultTimeoutError,
    UnknownTaskError,
    WorkerStartError,
)
from .flows import Flow, chain, group
from .handle import JobHandle
from .jobs import Event, Job, JobState
from .middleware import Enqueuing
from .outcomes import Cancel, NonRetryableError, RateLimited, Retry
from .plugins import Plugin
from .task import JobOptions, Task
from .worker import Worker

__version__ = "0.1.0"

__all__ = [
    "ArgumentsError",
    "Backend",
    "BackendError",
    "BackendUnavailableError",
    "Cancel",
    "Capabilities",
    "ConfigurationError",
    "Conveyor",
    "ConveyorError",
    "Dedup",
    "Enqueuing",
    "Event",
    "Flow",
    "InvalidFlowError",
    "InvalidJobError",
    "InvalidOptionError",
    "InvalidRequestError",
    "Job",
    "JobCancelledError",
    "JobContext",
    "JobFailedError",
    "JobFilter",
    "JobHandle",
    "JobNotFoundError",
    "JobOptions",
    "JobRemovedError",
    "JobState",
    "JobStateError",
    "NonRetryableError",
    "PayloadTooLargeError",
    "Plugin",
    "RateLimited",
    "ResultTimeoutError",
    "Retention",
    "Retry",
    "Task",
    "UnknownTaskError",
    "Worker",
    "WorkerStartError",
    "__version__",
    "chain",
    "current_job",
    "group",
    "log",
    "progress",
]
