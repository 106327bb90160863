"""The job record and its states, as every backend returns them.

Times are integer milliseconds since the Unix epoch, read from the backend's clock
(never from a producer's or worker's), so they compare across machines.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class JobState(enum.StrEnum):
    WAITING = "waiting"
    DELAYED = "delayed"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # in a flow: held until its dependencies finish (conveyor/flows), then waiting
    WAITING_CHILDREN = "waiting-children"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES


FINAL_STATES = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED})
ALL_STATES = tuple(JobState)


@dataclass(frozen=True, slots=True)
class Job:
    """One call of a task: what to run, how, and what happened so far."""

    id: str
    queue: str
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    state: JobState
    priority: int
    key: str | None
    attempt: int  # attempts started and charged; the running attempt's number while active
    max_attempts: int
    stalls: int  # times the job was taken back from a worker whose lease expired
    max_stalls: int
    timeout: float | None  # seconds
    backoff: dict[str, Any] | None
    meta: dict[str, Any]
    progress: Any
    result: Any
    errors: list[dict[str, Any]]  # one entry per failed attempt or stall, oldest first
    logs: list[dict[str, Any]]
    created_at: int
    scheduled_at: int  # when it is (or was) due
    started_at: int | None
    finished_at: int | None
    worker: str | None
    cancel_requested: bool
    # flows (conveyor/flows): the flow it belongs to, its dependencies (id -> the edge's
    # failure policy: "fail", "continue" or "skip") and how many have not finished yet
    flow_id: str | None = None
    parents: dict[str, str] = field(default_factory=dict)
    waits: int = 0

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def last_error(self) -> dict[str, Any] | None:
        return self.errors[-1] if self.errors else None


@dataclass(frozen=True, slots=True)
class Event:
    """One recorded step of a job: a state change, a progress report or a log line.

    `id` grows monotonically across the whole backend, so a reader resumes after the last
    id it saw and gets every later event exactly once.
    """

    id: int
    job_id: str
    queue: str
    kind: str  # a JobState value, "progress" or "log"
    data: dict[str, Any] = field(default_factory=dict)
    at: int = 0
