"""``app.schedules``: the schedules declared in code and the runtime API over stored ones.

Declarations (``@app.cron``, ``app.schedule``) are checked at once and kept here;
`store_declared` (run by a scheduler when it first leads) upserts them by name: a changed
expression takes effect from the next tick, without duplicates (tick keys do not
change), and stored code schedules of its tasks no longer declared are retired. An operator's pause
survives it. Schedules created at runtime (origin "api") are left alone.

Every method has an async twin named with a leading ``a`` (``await app.schedules.alist()``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ..backends.base import Backend
from ..backends.schedules import ScheduleRecord
from ..errors import ConfigurationError, ScheduleConflictError, ScheduleNotFoundError
from ..handle import JobHandle
from ..serialization import loads
from . import planner
from .spec import ScheduleSpec, build, check_name

if TYPE_CHECKING:
    from ..app import Conveyor
    from ..task import Task

T = TypeVar("T")
_ATTEMPTS = 5  # a change made from a stale read is re-read and made again, this often


@dataclass(frozen=True, slots=True)
class Schedule:
    """A stored schedule as users see it (times in ms since the epoch, backend clock)."""

    name: str
    task: str
    queue: str
    expression: str
    tz: str
    args: list[Any]
    kwargs: dict[str, Any]
    paused: bool
    origin: str
    overlap: str
    misfire: str
    next_run_at: int | None
    last_tick_at: int | None
    last_run_at: int | None
    last_job_id: str | None
    last_outcome: str | None  # the last run's job state, None if none or pruned
    last_success_at: int | None
    every_ms: int | None
    enqueued: int
    skipped_overlap: int
    skipped_misfire: int
    expired: int

    @classmethod
    def of(cls, record: ScheduleRecord) -> Schedule:
        spec = ScheduleSpec.from_record(record)
        state = record.last_job_state
        return cls(
            name=record.name, task=record.task, queue=record.queue,
            expression=spec.timing.expression, tz=spec.timing.tz,
            args=loads(spec.job.args_json), kwargs=loads(spec.job.kwargs_json),
            paused=record.paused, origin=record.origin, overlap=spec.overlap,
            misfire=spec.misfire, next_run_at=None if record.paused else record.next_run_at,
            last_tick_at=record.last_tick_at, last_run_at=record.last_run_at,
            last_job_id=record.last_job_id, last_outcome=None if state is None else state.value,
            last_success_at=record.last_success_at, every_ms=spec.timing.every_ms,
            enqueued=record.enqueued, skipped_overlap=record.skipped_overlap,
            skipped_misfire=record.skipped_misfire, expired=record.expired)

    def to_json(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in self.__slots__}
        for name in ("next_run_at", "last_tick_at", "last_run_at", "last_success_at"):
            out[name] = iso(out[name])
        return out


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class SyncReport:
    created: list[str]
    updated: list[str]
    retired: list[str]


class Schedules:
    """Declared schedules plus the runtime API (``app.schedules``)."""

    def __init__(self, app: Conveyor) -> None:
        self.app = app
        self.declared: dict[str, ScheduleSpec] = {}

    # -- declaring in code --------------------------------------------------------------
    def declare(self, name: str | None, task: Task[Any, Any], args: Sequence[Any] = (),
                kwargs: dict[str, Any] | None = None, **options: Any) -> ScheduleSpec:
        name = check_name(name if name is not None else task.name)
        if name in self.declared:
            raise ConfigurationError(
                f"a schedule named {name!r} is declared already; pass name= to tell "
                "them apart")
        spec = build(name, task.prepare(*args, **(kwargs or {})), **options)
        self.declared[name] = spec
        return spec

    # -- reading ------------------------------------------------------------------------
    async def alist(self) -> list[Schedule]:
        return [Schedule.of(r) for r in await (await self._backend()).schedules()]

    async def aget(self, name: str) -> Schedule:
        return Schedule.of(await self._record(await self._backend(), name))

    # -- changing -----------------------------------------------------------------------
    async def acreate(self, name: str, task: str, *, args: Sequence[Any] = (),
                      kwargs: dict[str, Any] | None = None, **options: Any) -> Schedule:
        """Store a new schedule (origin "api"); ScheduleConflictError if the name is taken."""
        spec = build(name, self.app.get_task(task).prepare(*args, **(kwargs or {})), **options)
        backend = await self._backend()
        now = await backend.now()
        saved = await backend.save_schedule(spec.record("api", spec.first_run_after(now), 0))
        if saved is None:
            raise ScheduleConflictError(f"a schedule named {name!r} exists already")
        return Schedule.of(saved)

    async def aupdate(self, name: str, **changes: Any) -> Schedule:
        """Change a schedule's timing, arguments or options (the others stay)."""
        def change(record: ScheduleRecord, spec: ScheduleSpec, now: int) -> ScheduleRecord:
            new = self._rebuilt(record, spec, changes)
            return self._replacing(record, spec, new, now, record.origin)
        return Schedule.of(await self._change(name, change))

    async def apause(self, name: str) -> Schedule:
        return Schedule.of(await self._change(name, _paused(True)))

    async def aresume(self, name: str) -> Schedule:
        return Schedule.of(await self._change(name, _paused(False)))

    async def adelete(self, name: str) -> None:
        if not await (await self._backend()).delete_schedule(name):
            raise ScheduleNotFoundError(name)

    async def atrigger(self, name: str) -> JobHandle[Any]:
        """Enqueue a run now (the next run stays where it is)."""
        backend = await self._backend()
        for _ in range(_ATTEMPTS):
            record = await self._record(backend, name)
            now = await backend.now()
            firing = planner.trigger(record, ScheduleSpec.from_record(record), now)
            fired = (await backend.fire_schedules([firing]))[0]
            if fired.applied:
                return await self.app.aget_job(fired.job_ids[0])
        raise ScheduleConflictError(f"schedule {name!r} kept changing; try again")

    async def astore_declared(self, backend: Backend | None = None) -> SyncReport:
        """Upsert the declared schedules by name; retire stored code schedules of this
        app's tasks that are no longer declared. `backend`: another connection than the
        app's (a worker start hook's)."""
        backend = backend or await self._backend()
        stored = {r.name: r for r in await backend.schedules()}
        report = SyncReport([], [], [])
        for name, spec in self.declared.items():
            record = stored.get(name)
            if record is None:
                now = await backend.now()
                if await backend.save_schedule(
                        spec.record("code", spec.first_run_after(now), 0)) is not None:
                    report.created.append(name)
                    continue
            elif record.origin == "code" and _same(ScheduleSpec.from_record(record), spec):
                continue
            await self._change(name, self._declared_change(spec), backend)
            report.updated.append(name)
        for name, record in stored.items():
            # only this app's: another app on the same store (other tasks) keeps its own
            if record.origin == "code" and name not in self.declared \
                    and record.task in self.app.tasks:
                await backend.delete_schedule(name)
                report.retired.append(name)
        return report

    # -- sync twins ---------------------------------------------------------------------
    def list(self) -> list[Schedule]:
        return self._sync(self.alist)

    def get(self, name: str) -> Schedule:
        return self._sync(lambda: self.aget(name))

    def create(self, name: str, task: str, **options: Any) -> Schedule:
        return self._sync(lambda: self.acreate(name, task, **options))

    def update(self, name: str, **changes: Any) -> Schedule:
        return self._sync(lambda: self.aupdate(name, **changes))

    def pause(self, name: str) -> Schedule:
        return self._sync(lambda: self.apause(name))

    def resume(self, name: str) -> Schedule:
        return self._sync(lambda: self.aresume(name))

    def trigger(self, name: str) -> JobHandle[Any]:
        return self._sync(lambda: self.atrigger(name))

    def delete(self, name: str) -> None:
        self._sync(lambda: self.adelete(name))

    def store_declared(self) -> SyncReport:
        return self._sync(self.astore_declared)

    # -- plumbing -----------------------------------------------------------------------
    def _sync(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run an async method from sync code: on backends that run inline, the whole
        coroutine completes on this thread without an event loop."""
        self.app.open()

        async def run() -> T:
            return await call()
        return self.app.run_sync(run)

    async def _backend(self) -> Backend:
        await self.app.aopen()
        return self.app.backend

    async def _record(self, backend: Backend, name: str) -> ScheduleRecord:
        for record in await backend.schedules():
            if record.name == name:
                return record
        raise ScheduleNotFoundError(name)

    async def _change(self, name: str,
                      change: Callable[[ScheduleRecord, ScheduleSpec, int], ScheduleRecord],
                      backend: Backend | None = None) -> ScheduleRecord:
        """Read, change, save from the version read; again if another change came first."""
        backend = backend or await self._backend()
        for _ in range(_ATTEMPTS):
            record = await self._record(backend, name)
            now = await backend.now()
            saved = await backend.save_schedule(
                change(record, ScheduleSpec.from_record(record), now))
            if saved is not None:
                return saved
        raise ScheduleConflictError(f"schedule {name!r} kept changing; try again")

    def _declared_change(self, declared: ScheduleSpec
                         ) -> Callable[[ScheduleRecord, ScheduleSpec, int], ScheduleRecord]:
        def change(record: ScheduleRecord, spec: ScheduleSpec, now: int) -> ScheduleRecord:
            new = declared.with_changes(paused=record.paused)
            return self._replacing(record, spec, new, now, "code")
        return change

    @staticmethod
    def _replacing(record: ScheduleRecord, old: ScheduleSpec, new: ScheduleSpec, now: int,
                   origin: str) -> ScheduleRecord:
        """A new definition from the version read: the next run stays unless the timing
        changed (then the first new tick after both now and the last tick)."""
        next_run = record.next_run_at
        if not new.same_timing(old):
            next_run = new.first_run_after(max(now, record.last_tick_at or 0))
        return new.record(origin, next_run, record.version)

    def _rebuilt(self, record: ScheduleRecord, spec: ScheduleSpec,
                 changes: dict[str, Any]) -> ScheduleSpec:
        task = self.app.get_task(changes.pop("task", record.task))
        args = changes.pop("args", loads(spec.job.args_json))
        kwargs = changes.pop("kwargs", loads(spec.job.kwargs_json))
        options = _options_of(spec)
        if "cron" in changes or "every" in changes:
            options.pop("cron", None)
            options.pop("every", None)
            options.pop("tz", None)
        options.update(changes)
        return build(record.name, task.prepare(*args, **kwargs), **options)


def _options_of(spec: ScheduleSpec) -> dict[str, Any]:
    """The `build` options that give `spec` again."""
    t = spec.timing
    return {
        "cron": t.cron, "every": None if t.every_ms is None else t.every_ms / 1000,
        "tz": t.tz if t.cron is not None else None,
        "start": None if spec.start_ms is None else _dt(spec.start_ms),
        "end": None if spec.end_ms is None else _dt(spec.end_ms),
        "misfire": spec.misfire, "catch_up": spec.catch_up,
        "misfire_grace": spec.grace_ms / 1000, "overlap": spec.overlap,
        "jitter": spec.jitter_ms / 1000,
        "expires": None if spec.expires_ms is None else spec.expires_ms / 1000,
        "paused": spec.paused,
    }


def _dt(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def _same(a: ScheduleSpec, b: ScheduleSpec) -> bool:
    return a.with_changes(paused=False).to_json() == b.with_changes(paused=False).to_json()


def _paused(paused: bool) -> Callable[[ScheduleRecord, ScheduleSpec, int], ScheduleRecord]:
    def change(record: ScheduleRecord, spec: ScheduleSpec, now: int) -> ScheduleRecord:
        next_run = record.next_run_at
        if record.paused and not paused:  # ticks missed while paused are not made up
            next_run = spec.first_run_after(max(now, record.last_tick_at or 0))
        return spec.with_changes(paused=paused).record(record.origin, next_run,
                                                       record.version)
    return change

