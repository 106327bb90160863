"""What a scheduler does with one schedule at one moment: a pure decision, no I/O.

From the stored record (its version, next run, last run) and the backend's "now", `plan`
says which ticks to enqueue (the misfire policy applied to late ones), where the next
run goes, whether a buffered tick may go now, and whether the last run expired. The
backend then applies the decision atomically, or refuses it if the record moved on.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..backends.base import NewJob
from ..backends.schedules import Firing, ScheduleRecord
from ..jobs import JobState
from .spec import ScheduleSpec

PENDING = frozenset({JobState.WAITING, JobState.DELAYED})
BUSY = PENDING | {JobState.ACTIVE}


@dataclass(frozen=True, slots=True)
class Plan:
    firing: Firing | None
    wake_at: int | None  # when this schedule next needs a look (ms), None: not by itself


def plan(record: ScheduleRecord, spec: ScheduleSpec, now: int) -> Plan:
    expire = _expired_run(record, spec, now)
    release = _releasable(record)
    jobs: list[tuple[int, NewJob]] = []
    if release is not None:
        jobs.append((release, _job(spec, release)))
    next_run, skipped = record.next_run_at, 0
    if not record.paused and next_run is not None and next_run <= now:
        fire, skipped = _due(spec, next_run, now)
        jobs += [(tick, _job(spec, tick)) for tick in fire]
        next_run = spec.first_run_after(max(now, next_run))
    elif record.paused and expire is None:
        return Plan(None, None)
    firing = None
    if jobs or expire is not None or next_run != record.next_run_at:
        firing = Firing(
            name=record.name, queue=record.queue, version=record.version, jobs=jobs,
            next_run_at=next_run, skipped_misfire=skipped, pending_tick_at=release,
            expire_job_id=expire,
            expire_reason=_reason(spec) if expire is not None else "")
    return Plan(firing, _wake_at(record, spec, next_run))


def trigger(record: ScheduleRecord, spec: ScheduleSpec, now: int) -> Firing:
    """A run now, outside the timing: the next run stays, the overlap policy is waived."""
    return Firing(name=record.name, queue=record.queue, version=record.version,
                  jobs=[(now, spec.job_for(now))], next_run_at=record.next_run_at,
                  advance=False, force=True)


def _due(spec: ScheduleSpec, first: int, now: int) -> tuple[list[int], int]:
    """The ticks to enqueue from those due since `first`, and how many the misfire
    policy drops. A tick later than the grace was missed (no scheduler ran then)."""
    ticks, count = spec.timing.due(first, now)
    if spec.end_ms is not None:
        count -= sum(1 for t in ticks if t > spec.end_ms)
        ticks = [t for t in ticks if t <= spec.end_ms]
    on_time = [t for t in ticks if now - t <= spec.grace_ms]
    late = ticks[: len(ticks) - len(on_time)]
    missed = count - len(on_time)
    if spec.misfire == "skip" or not late:
        kept: list[int] = []
    elif spec.misfire == "once":
        kept = late[-1:]
    else:
        kept = late[-spec.catch_up:]
    return kept + on_time, missed - len(kept)


def _job(spec: ScheduleSpec, tick: int) -> NewJob:
    jitter = random.randint(0, spec.jitter_ms) if spec.jitter_ms else 0
    return spec.job_for(tick, jitter)


def _releasable(record: ScheduleRecord) -> int | None:
    """overlap="queue": the buffered tick may go once the run before it has finished."""
    if record.pending_tick_at is None or record.paused:
        return None
    if record.last_job_state is not None and record.last_job_state in BUSY:
        return None
    return record.pending_tick_at


def _expired_run(record: ScheduleRecord, spec: ScheduleSpec, now: int) -> str | None:
    if spec.expires_ms is None or record.last_job_id is None or record.last_tick_at is None:
        return None
    if record.last_job_state not in PENDING:
        return None
    return record.last_job_id if now >= record.last_tick_at + spec.expires_ms else None


def _reason(spec: ScheduleSpec) -> str:
    assert spec.expires_ms is not None
    return (f"schedule {spec.name!r}: not started within {spec.expires_ms / 1000:g}s "
            "of its tick (expires)")


def _wake_at(record: ScheduleRecord, spec: ScheduleSpec, next_run: int | None) -> int | None:
    times = [] if record.paused or next_run is None else [next_run]
    if spec.expires_ms is not None and record.last_tick_at is not None \
            and record.last_job_state in PENDING:
        times.append(record.last_tick_at + spec.expires_ms)
    return min(times) if times else None
