"""The backend contract for schedules: four verbs, named after what they do.

A schedule is stored as a record the backend mostly does not read: its definition (timing,
policies, the job to enqueue) travels as JSON that only the scheduler interprets. The
backend keeps what must change atomically with a tick: the version, the next run, the
last tick and its job, the buffered tick of ``overlap="queue"`` and the counters.

    schedules()            every stored schedule, with the state of its last run's job
    save_schedule(r)       create or replace one by name, unless its version moved on
    delete_schedule(name)  forget one (its jobs stay)
    fire_schedules(fs)     for each firing, in ONE atomic operation per schedule: refuse it
                           if the version moved on or a tick is not due by the backend's
                           clock; else apply the overlap policy against the last run,
                           enqueue each tick's job under the tick's key (a tick already
                           enqueued is not enqueued again), cancel an expired run, and
                           advance the next run. Exactly once per tick follows from the
                           version check, whatever number of schedulers race.

Every change bumps the version, so a scheduler that planned from an old read (another
leader fired first, an operator paused it) changes nothing and plans again.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..jobs import JobState
    from .base import NewJob

OVERLAP_POLICIES = ("allow", "skip", "queue")


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    """One stored schedule. `save_schedule` writes the first block; the backend keeps the
    second (what it was given there is ignored)."""

    name: str
    queue: str  # the queue its jobs go to (on Redis: the slot its keys live in)
    task: str
    definition_json: str  # timing, policies and job template (conveyor.schedules.spec)
    overlap: str  # allow | skip | queue: the one policy the fire itself applies
    paused: bool
    origin: str  # "code": upserted from declarations (and retired with them); "api"
    next_run_at: int | None  # ms; None when it has ended
    version: int = 0  # save: the version the change was made from (0 = create)

    last_tick_at: int | None = None
    last_job_id: str | None = None
    last_job_state: JobState | None = None  # None when the job is unknown (pruned)
    last_run_at: int | None = None  # when the backend enqueued the last run
    last_success_at: int | None = None  # finish of the last run seen completed
    pending_tick_at: int | None = None  # overlap="queue": the tick waiting its turn
    enqueued: int = 0  # ticks enqueued (counters, for metrics)
    skipped_overlap: int = 0
    skipped_misfire: int = 0
    expired: int = 0
    created_at: int | None = None
    updated_at: int | None = None


@dataclass(frozen=True, slots=True)
class Firing:
    """What a scheduler decided for one schedule, from the version it read."""

    name: str
    queue: str
    version: int
    jobs: Sequence[tuple[int, NewJob]] = ()  # (tick ms, job whose key is the tick's), oldest first
    next_run_at: int | None = None  # where the schedule goes next (None: it ended)
    advance: bool = True  # False: a manual trigger, next_run_at stays as it is
    skipped_misfire: int = 0
    force: bool = False  # a manual trigger: the overlap policy does not apply
    pending_tick_at: int | None = None  # overlap="queue": also release the buffered tick
    expire_job_id: str | None = None  # cancel this run if it is still waiting or delayed
    expire_reason: str = ""


@dataclass(frozen=True, slots=True)
class Fired:
    applied: bool  # False: refused (stale version or a tick not due), nothing changed
    job_ids: list[str] = field(default_factory=list)  # stored, or found under the tick's key
    skipped_overlap: int = 0
    buffered: bool = False  # overlap="queue": a tick now waits for the running one
    expired: bool = False
    version: int = 0  # the schedule's version after the firing


class ScheduleStore(abc.ABC):
    """The schedule verbs of the backend contract (mixed into `Backend`)."""

    @abc.abstractmethod
    async def schedules(self) -> list[ScheduleRecord]:
        """Every stored schedule, by name, with its last run's job state."""

    @abc.abstractmethod
    async def save_schedule(self, record: ScheduleRecord) -> ScheduleRecord | None:
        """Create (record.version 0, the name unused) or replace (record.version is the
        stored one) a schedule's definition and next run; None when the name is taken or
        the version moved on (nothing written). Counters and last run are kept."""

    @abc.abstractmethod
    async def delete_schedule(self, name: str) -> bool:
        """Forget a schedule; False when there was none."""

    @abc.abstractmethod
    async def fire_schedules(self, firings: Sequence[Firing]) -> list[Fired]:
        """Apply each firing atomically (see the module docstring); one result each."""
