"""A schedule's definition: when it ticks, what each tick enqueues, and its policies.

Checked completely when it is declared (``@app.cron``, ``app.schedule``, the runtime
API), so a bad expression, time zone, option or argument is an `InvalidOptionError` /
`ArgumentsError` then, never at 9 am. Stored as JSON the backend does not read.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass, field, replace
from typing import Any

from ..backends.base import NewJob
from ..backends.schedules import OVERLAP_POLICIES, ScheduleRecord
from ..backoff import parse_duration
from ..errors import InvalidOptionError
from ..ids import new_job_id
from ..serialization import dumps, loads
from .timing import Timing

MISFIRE_POLICIES = ("skip", "once", "all")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")
DEFAULT_GRACE_MS = 30_000  # longer than a leader failover, so one loses no tick
DEFAULT_CATCH_UP = 100


@dataclass(frozen=True, slots=True)
class JobTemplate:
    """The job every tick enqueues, encoded once at declaration."""

    task: str
    queue: str
    args_json: str
    kwargs_json: str
    priority: int
    max_attempts: int
    max_stalls: int
    timeout: float | None
    backoff_json: str | None
    meta: dict[str, Any] = field(default_factory=dict)
    flow: str | None = None  # its flow group (conveyor/flow): the task's limits hold

    @classmethod
    def from_job(cls, job: NewJob) -> JobTemplate:
        return cls(job.task, job.queue, job.args_json, job.kwargs_json, job.priority,
                   job.max_attempts, job.max_stalls, job.timeout, job.backoff_json,
                   loads(job.meta_json) or {}, job.flow)


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    name: str
    timing: Timing
    job: JobTemplate
    start_ms: int | None = None
    end_ms: int | None = None
    misfire: str = "once"
    catch_up: int = DEFAULT_CATCH_UP  # misfire="all": at most this many missed ticks
    grace_ms: int = DEFAULT_GRACE_MS  # a tick later than this was missed
    overlap: str = "skip"
    jitter_ms: int = 0
    expires_ms: int | None = None
    paused: bool = False

    # -- the job of one tick ------------------------------------------------------------
    def job_for(self, tick_ms: int, jitter_ms: int = 0) -> NewJob:
        j = self.job
        return NewJob(
            id=new_job_id(), queue=j.queue, task=j.task, args_json=j.args_json,
            kwargs_json=j.kwargs_json, priority=j.priority, key=tick_key(self.name, tick_ms),
            run_at_ms=tick_ms + jitter_ms if jitter_ms else None,
            max_attempts=j.max_attempts, max_stalls=j.max_stalls, timeout=j.timeout,
            backoff_json=j.backoff_json,
            meta_json=dumps({**j.meta, "schedule": self.name, "tick": _iso(tick_ms)}),
            flow=j.flow,
        )

    def first_run_after(self, after_ms: int) -> int | None:
        """The first tick strictly after `after_ms` within start/end."""
        if self.start_ms is not None and after_ms < self.start_ms:
            after_ms = self.start_ms - 1
        tick = self.timing.next_after(after_ms)
        if tick is None or (self.end_ms is not None and tick > self.end_ms):
            return None
        return tick

    def same_timing(self, other: ScheduleSpec) -> bool:
        return (self.timing, self.start_ms, self.end_ms) == (other.timing, other.start_ms,
                                                             other.end_ms)

    # -- storage ------------------------------------------------------------------------
    def to_json(self) -> str:
        t = self.timing
        return dumps({
            "cron": t.cron, "every_ms": t.every_ms, "tz": t.tz, "anchor_ms": t.anchor_ms,
            "start_ms": self.start_ms, "end_ms": self.end_ms, "misfire": self.misfire,
            "catch_up": self.catch_up, "grace_ms": self.grace_ms, "overlap": self.overlap,
            "jitter_ms": self.jitter_ms, "expires_ms": self.expires_ms,
            "job": {"task": self.job.task, "queue": self.job.queue,
                    "args": self.job.args_json, "kwargs": self.job.kwargs_json,
                    "priority": self.job.priority, "max_attempts": self.job.max_attempts,
                    "max_stalls": self.job.max_stalls, "timeout": self.job.timeout,
                    "backoff": self.job.backoff_json, "meta": self.job.meta,
                    # only when set: a schedule without limits keeps its stored definition
                    **({} if self.job.flow is None else {"flow": self.job.flow})},
        })

    @classmethod
    def from_record(cls, record: ScheduleRecord) -> ScheduleSpec:
        d = loads(record.definition_json)
        j = d["job"]
        return cls(
            name=record.name,
            timing=Timing(cron=d["cron"], every_ms=d["every_ms"], tz=d["tz"],
                          anchor_ms=d["anchor_ms"]),
            job=JobTemplate(j["task"], j["queue"], j["args"], j["kwargs"], j["priority"],
                            j["max_attempts"], j["max_stalls"], j["timeout"], j["backoff"],
                            j["meta"], j.get("flow")),
            start_ms=d["start_ms"], end_ms=d["end_ms"], misfire=d["misfire"],
            catch_up=d["catch_up"], grace_ms=d["grace_ms"], overlap=d["overlap"],
            jitter_ms=d["jitter_ms"], expires_ms=d["expires_ms"], paused=record.paused,
        )

    def record(self, origin: str, next_run_at: int | None, version: int) -> ScheduleRecord:
        return ScheduleRecord(name=self.name, queue=self.job.queue, task=self.job.task,
                              definition_json=self.to_json(), overlap=self.overlap,
                              paused=self.paused, origin=origin, next_run_at=next_run_at,
                              version=version)

    def with_changes(self, **changes: Any) -> ScheduleSpec:
        return replace(self, **changes)


def tick_key(name: str, tick_ms: int) -> str:
    """The dedup key of a tick's job: the same tick can never be enqueued twice."""
    return f"schedule:{name}:{tick_ms}"


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidOptionError(
            f"bad schedule name {name!r}: 1-100 letters, digits, '.', '_', ':' or '-'")
    return name


def build(name: str, job: NewJob, *, cron: str | None = None, every: Any = None,
          tz: str | None = None, start: Any = None, end: Any = None, misfire: str = "once",
          catch_up: int = DEFAULT_CATCH_UP, misfire_grace: Any = None,
          overlap: str = "skip", jitter: Any = None, expires: Any = None,
          paused: bool = False) -> ScheduleSpec:
    """A checked spec from the options users write (durations as '30s' or seconds)."""
    start_ms, end_ms = _instant(start, "start"), _instant(end, "end")
    if start_ms is not None and end_ms is not None and end_ms <= start_ms:
        raise InvalidOptionError("end must be after start")
    timing = Timing.parse(cron, every, tz, anchor_ms=start_ms or 0)
    if misfire not in MISFIRE_POLICIES:
        raise InvalidOptionError(f"misfire must be one of {', '.join(MISFIRE_POLICIES)}")
    if overlap not in OVERLAP_POLICIES:
        raise InvalidOptionError(f"overlap must be one of {', '.join(OVERLAP_POLICIES)}")
    if isinstance(catch_up, bool) or not isinstance(catch_up, int) or not 1 <= catch_up <= 10_000:
        raise InvalidOptionError("catch_up must be an integer between 1 and 10000")
    if not isinstance(paused, bool):
        raise InvalidOptionError("paused must be True or False")
    jitter_ms = _ms(jitter, "jitter") or 0
    expires_ms = _ms(expires, "expires")
    if expires_ms is not None and expires_ms <= jitter_ms:
        raise InvalidOptionError("expires must be longer than jitter")
    grace = _ms(misfire_grace, "misfire_grace")
    return ScheduleSpec(
        name=check_name(name), timing=timing, job=JobTemplate.from_job(job),
        start_ms=start_ms, end_ms=end_ms, misfire=misfire, catch_up=catch_up,
        grace_ms=DEFAULT_GRACE_MS if grace is None else grace, overlap=overlap,
        jitter_ms=jitter_ms, expires_ms=expires_ms, paused=paused)


def _ms(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, dt.timedelta):
        value = value.total_seconds()
    return round(parse_duration(value, what) * 1000)


def _instant(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise InvalidOptionError(f"{what} {value!r} is not an ISO 8601 time") from None
    if not isinstance(value, dt.datetime):
        raise InvalidOptionError(f"{what} must be a timezone-aware datetime")
    if value.tzinfo is None:
        raise InvalidOptionError(f"{what} must be timezone-aware (e.g. datetime.now(UTC))")
    return round(value.timestamp() * 1000)


@functools.lru_cache(maxsize=1024)  # the schedules due together share their tick
def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")
