"""The schedule verbs on SQLite: each a function of one connection, one transaction.

`fire` is the heart: the version check, the overlap policy against the last run, the
tick's job stored under the tick's key (with its first event, as `enqueue` does), an
expired run cancelled and the schedule advanced, all in one BEGIN IMMEDIATE.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from ...jobs import JobState
from ..base import NewJob
from ..schedules import Fired, Firing, ScheduleRecord
from .store import Q, SqliteStore

_BUSY = ("waiting", "delayed", "active")
T = TypeVar("T")


def read_all(store: SqliteStore, conn: sqlite3.Connection) -> list[ScheduleRecord]:
    return [_record(row) for row in conn.execute(Q["schedules"])]


def save(store: SqliteStore, conn: sqlite3.Connection,
         record: ScheduleRecord) -> ScheduleRecord | None:
    params = {"name": record.name, "queue": record.queue, "task": record.task,
              "definition": record.definition_json, "overlap": record.overlap,
              "paused": int(record.paused), "origin": record.origin,
              "next_run_at": record.next_run_at, "version": record.version}
    with store.transaction(conn) as now:
        query = "schedule_create" if record.version == 0 else "schedule_replace"
        if conn.execute(Q[query], {**params, "now": now}).rowcount != 1:
            return None
        row = conn.execute(Q["schedule_by_name"], {"name": record.name}).fetchone()
    return None if row is None else _record(row)


def delete(store: SqliteStore, conn: sqlite3.Connection, name: str) -> bool:
    with store.transaction(conn):
        return conn.execute(Q["schedule_delete"], {"name": name}).rowcount == 1


def fire(store: SqliteStore, conn: sqlite3.Connection,
         firings: Sequence[Firing]) -> list[Fired]:
    with store.transaction(conn) as now:
        return [_fire_one(conn, f, now) for f in firings]


def _fire_one(conn: sqlite3.Connection, f: Firing, now: int) -> Fired:
    row = conn.execute(Q["schedule_version"], {"name": f.name}).fetchone()
    if row is None or row[0] != f.version or any(tick > now for tick, _ in f.jobs):
        return Fired(False)
    (_, last_job, last_state, finished_at, pending, last_tick, last_run, last_success,
     next_run, overlap) = row
    if last_state == "completed":
        last_success = finished_at
    expired = 0
    if f.expire_job_id is not None:
        expired = conn.execute(Q["schedule_expire"], {
            "id": f.expire_job_id, "now": now, "reason": f.expire_reason}).rowcount
        if expired and f.expire_job_id == last_job:
            last_state = "cancelled"
    if f.pending_tick_at is not None and f.pending_tick_at == pending:
        pending = None
    busy = last_state in _BUSY
    ids: list[str] = []
    stored = skipped = 0
    buffered = False
    for tick, job in f.jobs:
        if busy and not f.force and overlap != "allow":
            if overlap == "queue":
                skipped += pending is not None and pending != tick
                pending, buffered = tick, True
            else:
                skipped += 1
            continue
        job_id, created = _store_job(conn, job, now)
        ids.append(job_id)
        stored += created
        last_job, last_tick, last_run, busy = job_id, tick, now, True
    version = conn.execute(Q["schedule_fired"], {
        "name": f.name, "now": now,
        "next_run_at": f.next_run_at if f.advance else next_run,
        "last_tick_at": last_tick, "last_job": last_job, "last_run_at": last_run,
        "last_success_at": last_success, "pending_tick_at": pending, "enqueued": stored,
        "skipped_overlap": skipped, "skipped_misfire": f.skipped_misfire,
        "expired": expired}).fetchone()[0]
    return Fired(True, ids, skipped, buffered, bool(expired), version)


def _store_job(conn: sqlite3.Connection, job: NewJob, now: int) -> tuple[str, bool]:
    """The tick's job, unless a job holds its key already (that one is returned)."""
    existing = conn.execute(Q["by_key"], {"queue": job.queue, "key": job.key}).fetchone()
    if existing is not None:
        return str(existing[1]), False
    before = conn.execute(Q["last_seq"]).fetchone()[0]
    due = job.run_at_ms if job.run_at_ms is not None else now + job.delay_ms
    row = (job.id, job.queue, job.task, job.args_json, job.kwargs_json,
           "delayed" if due > now else "waiting", job.priority, job.key, job.max_attempts,
           job.max_stalls, job.timeout, job.backoff_json, job.meta_json, now, due)
    if job.flow is None:
        conn.execute(Q["enqueue"], row)
    else:  # the task has limits: its group goes with it (conveyor/flow, store.py)
        conn.execute(Q["enqueue_flow"], (*row, job.flow))
        conn.execute(Q["flow_queue_on"], {"queue": job.queue})
        conn.execute(Q["flow_group_add"], {"queue": job.queue, "grp": job.flow})
    conn.execute(Q["enqueued_events"], {"before": before})
    return job.id, True


def _record(row: Sequence[Any]) -> ScheduleRecord:
    return ScheduleRecord(
        name=row[0], queue=row[1], task=row[2], definition_json=row[3], overlap=row[4],
        paused=bool(row[5]), origin=row[6], next_run_at=row[7], version=row[8],
        last_tick_at=row[9], last_job_id=row[10],
        last_job_state=None if row[11] is None else JobState(row[11]), last_run_at=row[12],
        last_success_at=row[21] if row[11] == "completed" else row[13],
        pending_tick_at=row[14], enqueued=row[15], skipped_overlap=row[16],
        skipped_misfire=row[17], expired=row[18], created_at=row[19], updated_at=row[20])


class SqliteSchedules:
    """The schedule verbs of `SqliteBackend` (mixed in ahead of `Backend`)."""

    if TYPE_CHECKING:
        _store: SqliteStore

        async def _call(self, fn: Callable[..., T], *args: Any) -> T: ...

        def _notify(self, queues: Iterable[str] = ()) -> None: ...

    async def schedules(self) -> list[ScheduleRecord]:
        return await self._call(partial(read_all, self._store))

    async def save_schedule(self, record: ScheduleRecord) -> ScheduleRecord | None:
        return await self._call(partial(save, self._store), record)

    async def delete_schedule(self, name: str) -> bool:
        return await self._call(partial(delete, self._store), name)

    async def fire_schedules(self, firings: Sequence[Firing]) -> list[Fired]:
        fired = await self._call(partial(fire, self._store), firings)
        self._notify({f.queue for f, done in zip(firings, fired, strict=True) if done.job_ids})
        return fired
