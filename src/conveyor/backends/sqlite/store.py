"""The SQLite store: every backend verb as one synchronous transaction on one connection.

Writes open with ``BEGIN IMMEDIATE`` (the write lock up front, so a transaction never
fails half-way on an upgrade) and read "now" from SQLite inside it. The connection's own
busy handler is off (busy_timeout=0): a caller that may not block (the event loop) tries
once with `attempt_only=True`; the blocking path retries with short sleeps until
`lock_timeout`, then raises BackendUnavailableError. No write is ever dropped silently.
Every other SQLite error leaves as the ConveyorError that says what it means (failures.py).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from typing import Any, TypeVar

from ...errors import BackendUnavailableError, InvalidRequestError
from ...jobs import FINAL_STATES, Event, Job, JobState
from ...serialization import dumps, loads
from ..base import (
    Claim,
    Enqueued,
    Fetched,
    JobFilter,
    Lease,
    LeaseStatus,
    LimitInfo,
    NewJob,
    Outcome,
    Page,
    Pruned,
    QueueInfo,
    Retention,
    Settlement,
    WorkerInfo,
)
from . import dedup, flow, rows
from .failures import conveyor_error, is_busy
from .flow import FlowClaim

T = TypeVar("T")

_FINAL_SQL = "'completed', 'failed', 'cancelled'"  # exactly as in the jobs_finished index
FLOW_STARTS_MAX_AGE_MS = 31 * 86_400_000  # past the longest rate window (30 days)
WORKER_FORGET_MS = 3600 * 1000
AUTOCHECKPOINT_PAGES = 8_000  # ~32 MB of WAL before a writer must checkpoint itself
# A WAL file keeps its largest size once reset; after a checkpoint it is cut back to this.
JOURNAL_SIZE_LIMIT = 32 * 1024 * 1024


class Busy(Exception):
    """The write lock is held by another connection (attempt_only mode)."""


def _load_queries() -> dict[str, str]:
    text = resources.files(__package__).joinpath("queries.sql").read_text()
    blocks: dict[str, str] = {}
    name = None
    body: list[str] = []
    for line in text.splitlines():
        if line.startswith("-- name: "):
            if name:
                blocks[name] = "\n".join(body).strip()
            name, body = line[9:].strip(), []
        elif name and not line.lstrip().startswith("--"):
            body.append(line)
    if name:
        blocks[name] = "\n".join(body).strip()
    return {
        key: sql.rstrip(";")
        .replace("RETURNING *", f"RETURNING {rows.JOB_COLUMNS}")
        .replace("SELECT * FROM jobs", f"SELECT {rows.JOB_COLUMNS} FROM jobs")
        for key, sql in blocks.items()
    }


Q = _load_queries()
SCHEMA = resources.files(__package__).joinpath("schema.sql").read_text()


def where_sql(where: JobFilter) -> tuple[str, dict[str, Any]]:
    """The SQL condition and parameters for a job filter (values are always bound)."""
    parts: list[str] = []
    params: dict[str, Any] = {}
    if where.queue is not None:
        parts.append("queue = :f_queue")
        params["f_queue"] = where.queue
    if len(where.states) == 1:
        # a literal (enum values only), so SQLite can use the state's partial index
        parts.append(f"state = '{JobState(where.states[0]).value}'")
    elif where.states:
        parts.append("state IN (SELECT value FROM json_each(:f_states))")
        params["f_states"] = dumps([s.value for s in where.states])
    if where.states and all(s in FINAL_STATES for s in where.states):
        parts.append(f"state IN ({_FINAL_SQL})")
    if where.task is not None:
        parts.append("task = :f_task")
        params["f_task"] = where.task
    if where.ids:
        parts.append("id IN (SELECT value FROM json_each(:f_ids))")
        params["f_ids"] = dumps(list(where.ids))
    if where.search:
        escaped = where.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        like = f"%{escaped}%"
        parts.append(
            "(id = :f_search OR id LIKE :f_like ESCAPE '\\' OR task LIKE :f_like ESCAPE '\\'"
            " OR args LIKE :f_like ESCAPE '\\'"
            " OR kwargs LIKE :f_like ESCAPE '\\' OR errors LIKE :f_like ESCAPE '\\')"
        )
        params["f_search"] = where.search
        params["f_like"] = like
    return (" AND ".join(parts) or "1"), params


class SqliteStore:
    """One connection to one database file, safe to call from several threads."""

    def __init__(self, path: str, *, synchronous: str = "NORMAL", lock_timeout: float = 30.0):
        self.path = path
        self.synchronous = synchronous
        self.lock_timeout = lock_timeout
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._flow_queues = True  # any queue seen with flow control at the last claim

    # -- connection ---------------------------------------------------------------------
    def open(self) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   timeout=0)
        except sqlite3.Error as exc:
            raise conveyor_error(exc, self.path) from exc
        self._conn = conn
        self._blocking(lambda c: self._init(c))

    def _init(self, conn: sqlite3.Connection) -> None:
        if conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] != "wal":
            raise BackendUnavailableError(f"{self.path}: could not switch to WAL mode")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute("PRAGMA temp_store=MEMORY")
        # Writers rarely checkpoint themselves (a checkpoint fsyncs); workers' keeper threads
        # do it in the background after each heartbeat, see `checkpoint`.
        conn.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
        conn.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
        conn.execute("BEGIN IMMEDIATE")
        try:
            _add_columns(conn)
            for statement in _statements(SCHEMA):
                conn.execute(statement)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- running a unit of work ---------------------------------------------------------
    def run(self, work: Callable[[sqlite3.Connection], T], attempt_only: bool = False) -> T:
        """Run `work` with the connection. attempt_only: raise Busy instead of waiting."""
        if attempt_only:
            if not self._lock.acquire(blocking=False):
                raise Busy
            try:
                return self._once(work)
            except sqlite3.Error as exc:
                if is_busy(exc):
                    raise Busy from None
                raise conveyor_error(exc, self.path) from exc
            finally:
                self._lock.release()
        return self._blocking(work)

    def _blocking(self, work: Callable[[sqlite3.Connection], T]) -> T:
        deadline = time.monotonic() + self.lock_timeout
        pause = 0.0005
        while True:
            with self._lock:
                try:
                    return self._once(work)
                except sqlite3.Error as exc:
                    if not is_busy(exc):
                        raise conveyor_error(exc, self.path) from exc
            if time.monotonic() > deadline:
                raise BackendUnavailableError(
                    f"{self.path} stayed locked for more than {self.lock_timeout:g}s"
                )
            time.sleep(pause)
            pause = min(pause * 2, 0.01)

    def _once(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            raise BackendUnavailableError(f"{self.path} is not open")
        return work(self._conn)

    @contextmanager
    def transaction(self, conn: sqlite3.Connection) -> Iterator[int]:
        """BEGIN IMMEDIATE, yield SQLite's now (ms), COMMIT; ROLLBACK on any error."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            now: int = conn.execute(Q["now"]).fetchone()[0]
            yield now
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    # -- producers ----------------------------------------------------------------------
    def enqueue(self, conn: sqlite3.Connection, jobs: Sequence[NewJob]) -> list[Enqueued]:
        """Insert the batch with one prepared statement, then its events with one more; the
        stored jobs are built here from what was sent rather than read back."""
        with self.transaction(conn) as now:
            before = conn.execute(Q["last_seq"]).fetchone()[0]
            due = [new.run_at_ms if new.run_at_ms is not None else now + new.delay_ms
                   for new in jobs]
            inserted = [
                (new.id, new.queue, new.task, new.args_json, new.kwargs_json,
                 "delayed" if at > now else "waiting", new.priority, new.key,
                 new.max_attempts, new.max_stalls, new.timeout, new.backoff_json,
                 new.meta_json, now, at)
                for new, at in zip(jobs, due, strict=True)
            ]
            if any(new.special for new in jobs):
                return self._enqueue_special(conn, jobs, now, before)
            if any(new.flow is not None for new in jobs):
                stored = self._enqueue_flow(conn, jobs, inserted)
            else:
                stored = conn.executemany(Q["enqueue"], inserted).rowcount
            conn.execute(Q["enqueued_events"], {"before": before})
            if stored == len(jobs):
                return [Enqueued(rows.new_job(row), True) for row in inserted]
            created = {r[0] for r in conn.execute(Q["ids_after"], {"before": before})}
            return [Enqueued(rows.new_job(row), True) if new.id in created
                    else _existing(conn, new) for new, row in zip(jobs, inserted, strict=True)]

    def _enqueue_special(self, conn: sqlite3.Connection, jobs: Sequence[NewJob], now: int,
                         before: int) -> list[Enqueued]:
        """A batch with dedup modes or expiry (sqlite/dedup.py), in the same transaction."""
        decided = dedup.enqueue(conn, Q, jobs, now)
        conn.execute(Q["enqueued_events"], {"before": before})
        groups = sorted({(new.queue, new.flow) for new, (_, row) in zip(jobs, decided,
                                                                          strict=True)
                         if row is not None and new.flow is not None})
        for queue in {queue for queue, _ in groups}:
            conn.execute(Q["flow_queue_on"], {"queue": queue})
        for queue, grp in groups:
            conn.execute(Q["flow_group_add"], {"queue": queue, "grp": grp})
        return [folded or (Enqueued(rows.new_job(row), True) if row is not None
                           else _existing(conn, new))
                for new, (folded, row) in zip(jobs, decided, strict=True)]

    def _enqueue_flow(self, conn: sqlite3.Connection, jobs: Sequence[NewJob],
                      inserted: list[tuple[Any, ...]]) -> int:
        """Store a batch holding flow-controlled jobs: their group goes with them, the
        queue is marked for the flow claim, and each new waiting group gets its turn."""
        stored: int = conn.executemany(Q["enqueue_flow"], [
            (*row, new.flow) for new, row in zip(jobs, inserted, strict=True)]).rowcount
        groups = {(new.queue, new.flow) for new, row in zip(jobs, inserted, strict=True)
                  if new.flow is not None}
        for queue in {queue for queue, _ in groups}:
            conn.execute(Q["flow_queue_on"], {"queue": queue})
        for queue, grp in sorted(groups):
            conn.execute(Q["flow_group_add"], {"queue": queue, "grp": grp})
        return stored

    # -- workers ------------------------------------------------------------------------
    def fetch(self, conn: sqlite3.Connection, queues: Sequence[str], limit: int,
              worker_id: str, lease_ms: int, settle: Sequence[Settlement]) -> Fetched:
        claims: list[Claim] = []
        next_due: int | None = None
        with self.transaction(conn) as now:
            settled = self._settle_all(conn, settle, now)
            if limit > 0:
                dedup.before_claim(conn, Q, now)  # an expired job never starts
                conn.execute(Q["promote_due"], {"now": now})
                claims = self._claim(conn, queues, limit, worker_id, lease_ms, now)
            if len(claims) < limit:
                names = dumps(list(queues))
                due = conn.execute(Q["next_due"], {"queues": names}).fetchone()[0]
                if self._flow_queues:
                    unblock = conn.execute(Q["flow_next_unblock"],
                                           {"queues": names, "now": now}).fetchone()[0]
                    due = unblock if due is None or (unblock or due) < due else due
                next_due = None if due is None else max(due - now, 0)
        return Fetched(claims, settled, next_due)

    def _claim(self, conn: sqlite3.Connection, queues: Sequence[str], limit: int,
               worker_id: str, lease_ms: int, now: int) -> list[Claim]:
        paused: set[str] = set()
        flowing: set[str] = set()
        for name, is_paused, _is_flow in conn.execute(Q["special_queues"]):
            (paused if is_paused else flowing).add(name)
        self._flow_queues = bool(flowing)
        open_queues = [q for q in queues if q not in paused]
        candidates: list[tuple[int, int, int]] = []
        plans: list[FlowClaim] = []
        for queue in open_queues:
            if queue in flowing:
                plans.append(FlowClaim(conn, Q, queue, now))
                candidates += plans[-1].plan(limit)
            else:
                candidates += conn.execute(Q["claim_candidates"],
                                           {"queue": queue, "limit": limit})
        if not candidates:
            for plan in plans:
                plan.commit(set())
            return []
        if len(open_queues) > 1:
            candidates.sort(key=lambda c: (-c[1], c[2], c[0]))
            del candidates[limit:]
        claimed = conn.execute(Q["claim"], {
            "seqs": dumps([c[0] for c in candidates]), "worker": worker_id, "now": now,
            "lease_ms": lease_ms,
        }).fetchall()
        if plans:
            kept = {row[0] for row in claimed}
            for plan in plans:
                plan.commit(kept)
        claimed.sort(key=lambda r: (-r[7], r[21], r[0]))
        return [Claim(rows.job(row), row[rows.TOKEN]) for row in claimed]

    def settle(self, conn: sqlite3.Connection, settlements: Sequence[Settlement]) -> list[bool]:
        with self.transaction(conn) as now:
            return self._settle_all(conn, settlements, now)

    def _settle_all(self, conn: sqlite3.Connection, settlements: Sequence[Settlement],
                    now: int) -> list[bool]:
        """Completions in one statement (the common case under load), the rest one by one."""
        if not settlements:
            return []
        completed = [s for s in settlements if s.outcome is Outcome.COMPLETED]
        done: set[str] = set()
        if len(completed) > 1:
            batch = dumps([[s.job_id, s.token, s.result_json or "null"] for s in completed])
            done = {row[0] for row in conn.execute(Q["complete_many"],
                                                    {"batch": batch, "now": now})}
        out = []
        ended: list[str] = []  # flows: jobs others wait for that failed or were cancelled
        for s in settlements:
            if s.outcome is Outcome.COMPLETED and len(completed) > 1:
                out.append(s.job_id in done)
            else:
                out.append(self._settle_one(conn, s, now))
                if out[-1] and "^" in s.token and s.outcome is not Outcome.COMPLETED:
                    ended.append(s.job_id)
        if ended:
            fail_dependents(conn, ended, now)
        return out

    def _settle_one(self, conn: sqlite3.Connection, s: Settlement, now: int) -> bool:
        params: dict[str, Any] = {"id": s.job_id, "token": s.token, "now": now}
        if s.outcome is Outcome.COMPLETED:
            params["result"] = s.result_json
            query = "complete"
        elif s.outcome is Outcome.FAILED:
            params["error"] = dumps(s.error or {})
            params["retry_in_ms"] = s.retry_in_ms
            query = "fail"
        elif s.outcome is Outcome.CANCELLED:
            params["error"] = None if s.error is None else dumps(s.error)
            query = "cancelled"
        elif s.outcome is Outcome.RATE_LIMITED:
            return self._rate_limited(conn, s, now)
        elif s.outcome is Outcome.WAIT_CHILDREN:  # flows: it spawned children
            query = "wait_children"
        else:
            query = "release"
        return conn.execute(Q[query], params).rowcount == 1

    def _rate_limited(self, conn: sqlite3.Connection, s: Settlement, now: int) -> bool:
        """Hand the job back uncharged and pause its gates (or the one named) for all."""
        retry_in_ms = max(s.retry_in_ms or 0, 0)
        row = conn.execute(Q["rate_limited"], {"id": s.job_id, "token": s.token, "now": now,
                                               "retry_in_ms": retry_in_ms}).fetchone()
        if row is None:
            return False
        queue, grp = row
        if grp is not None:
            gates = loads(grp)
            named = [g for g in gates if g[0] == s.limiter]
            conn.executemany(Q["flow_pause"], [(queue, lim, rkey, now + retry_in_ms)
                                               for lim, rkey, _ in named or gates])
        return True

    def heartbeat(self, conn: sqlite3.Connection, worker: WorkerInfo,
                  leases: Sequence[Lease], lease_ms: int) -> list[LeaseStatus]:
        statuses: list[LeaseStatus] = []
        with self.transaction(conn) as now:
            conn.execute(Q["worker_seen"], {"id": worker.id, "info": _worker_json(worker),
                                            "now": now})
            for lease in leases:
                row = conn.execute(Q["extend_lease"], {
                    "id": lease.job_id, "token": lease.token, "now": now, "lease_ms": lease_ms,
                }).fetchone()
                if row is None:
                    statuses.append(LeaseStatus.LOST)
                elif row[0]:
                    statuses.append(LeaseStatus.CANCEL_REQUESTED)
                else:
                    statuses.append(LeaseStatus.HELD)
        return statuses

    def progress(self, conn: sqlite3.Connection, lease: Lease, value_json: str) -> bool:
        with self.transaction(conn):
            params = {"id": lease.job_id, "token": lease.token, "progress": value_json}
            return conn.execute(Q["progress"], params).rowcount == 1

    def log(self, conn: sqlite3.Connection, lease: Lease, message: str) -> bool:
        with self.transaction(conn) as now:
            params = {"id": lease.job_id, "token": lease.token, "message": message, "now": now}
            if conn.execute(Q["log_event"], params).rowcount != 1:
                return False
            conn.execute(Q["log_keep"], params)
            return True

    def checkpoint(self, conn: sqlite3.Connection, mode: str = "PASSIVE") -> None:
        """Copy the WAL back into the database file. PASSIVE (after each heartbeat) never
        waits; TRUNCATE (after each retention pass) also empties the WAL file when no
        reader or writer is in the way, so a WAL that readers kept from resetting under
        steady load cannot grow for ever. Neither waits for the lock (busy: skipped)."""
        assert mode in ("PASSIVE", "TRUNCATE")
        conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()

    # -- maintenance --------------------------------------------------------------------
    def now(self, conn: sqlite3.Connection) -> int:
        value: int = conn.execute(Q["now"]).fetchone()[0]
        return value

    def rescue(self, conn: sqlite3.Connection) -> list[str]:
        with self.transaction(conn) as now:
            ids = [row[0] for row in conn.execute(Q["rescue"], {"now": now}).fetchall()]
            if ids:
                fail_dependents(conn, ids, now)
            return ids

    def prune(self, conn: sqlite3.Connection, retention: Retention) -> Pruned:
        """One bounded batch per rule; the maintenance loop calls again while work remains."""
        pruned = Pruned()
        with self.transaction(conn) as now:
            queues = [row[0] for row in conn.execute("SELECT DISTINCT queue FROM jobs")]
            rules = (
                (JobState.COMPLETED, retention.completed_max_age_ms,
                 retention.completed_max_count),
                (JobState.CANCELLED, retention.completed_max_age_ms,
                 retention.completed_max_count),
                (JobState.FAILED, retention.failed_max_age_ms, retention.failed_max_count),
            )
            for queue in queues:
                for state, max_age, max_count in rules:
                    params = {"queue": queue, "state": state.value, "batch": retention.batch}
                    aged = conn.execute(Q["prune_by_age"],
                                        {**params, "cutoff": now - max_age}).rowcount
                    over = conn.execute(Q["prune_over_count"],
                                        {**params, "keep": max_count}).rowcount
                    pruned.more = pruned.more or retention.batch in (aged, over)
                    n = aged + over
                    if n:
                        pruned.by_state[state.value] = pruned.by_state.get(state.value, 0) + n
                        pruned.jobs += n
            pruned.events = conn.execute(Q["prune_events"], {
                "cutoff": now - retention.events_max_age_ms, "batch": retention.batch,
            }).rowcount
            conn.execute(Q["flow_prune_starts"], {"cutoff": now - FLOW_STARTS_MAX_AGE_MS})
            conn.execute(Q["flow_prune_pauses"], {"now": now})
            pruned.tombstones = conn.execute(Q["prune_tombstones"], {
                "cutoff": now - retention.tombstones_max_age_ms, "batch": retention.batch,
            }).rowcount
            pruned.tombstones += conn.execute(Q["prune_tombstones_over_count"], {
                "keep": retention.tombstones_max_count * max(len(queues), 1),
                "batch": retention.batch,
            }).rowcount
            pruned.more = pruned.more or retention.batch in (pruned.events,
                                                              pruned.tombstones)
            pruned.workers = conn.execute(Q["prune_workers"], {
                "cutoff": now - WORKER_FORGET_MS,
            }).rowcount
        return pruned

    def try_lock(self, conn: sqlite3.Connection, name: str, owner: str, ttl_ms: int) -> bool:
        with self.transaction(conn) as now:
            row = conn.execute(Q["try_lock"], {"name": name, "owner": owner, "now": now,
                                               "ttl_ms": ttl_ms}).fetchone()
            return row is not None

    def unregister_worker(self, conn: sqlite3.Connection, worker_id: str) -> None:
        with self.transaction(conn):
            conn.execute(Q["worker_gone"], {"id": worker_id})

    # -- operators ----------------------------------------------------------------------
    def get(self, conn: sqlite3.Connection, job_id: str) -> Job | None:
        row = conn.execute(Q["by_id"], {"id": job_id}).fetchone()
        return None if row is None else rows.job(row)

    def tombstone(self, conn: sqlite3.Connection, job_id: str) -> int | None:
        row = conn.execute(Q["tombstone"], {"id": job_id}).fetchone()
        return None if row is None else int(row[0])

    def list_jobs(self, conn: sqlite3.Connection, where: JobFilter, limit: int,
                  cursor: str | None) -> Page:
        if not 1 <= limit <= 1000:
            raise InvalidRequestError("limit must be between 1 and 1000")
        condition, params = where_sql(where)
        if cursor is not None:
            condition += " AND seq < :f_cursor"
            params["f_cursor"] = rows.decode_cursor(cursor)
        params["f_limit"] = limit + 1
        found = conn.execute(
            f"SELECT {rows.JOB_COLUMNS} FROM jobs WHERE {condition}"
            " ORDER BY seq DESC LIMIT :f_limit",
            params,
        ).fetchall()
        more = len(found) > limit
        found = found[:limit]
        cursor = rows.encode_cursor(found[-1][0]) if more else None
        return Page([rows.job(r) for r in found], cursor)

    def queues(self, conn: sqlite3.Connection) -> list[QueueInfo]:
        conn.execute("BEGIN")
        try:
            counts: dict[str, dict[JobState, int]] = {}
            for queue, state, n in conn.execute(Q["state_counts"]):
                counts.setdefault(queue, {})[rows.STATES[state]] = n
            paused = {name: bool(p) for name, p in conn.execute(Q["all_queues"])}
            oldest = dict(conn.execute(Q["oldest_waiting"]).fetchall())
        finally:
            conn.execute("COMMIT")
        # a queue exists by having jobs or by being paused (a resumed empty one is gone)
        names = sorted(set(counts) | {name for name, is_paused in paused.items() if is_paused})
        return [
            QueueInfo(
                name=name,
                counts={state: counts.get(name, {}).get(state, 0) for state in JobState},
                paused=paused.get(name, False),
                oldest_waiting_at=oldest.get(name),
            )
            for name in names
        ]

    def paused_queues(self, conn: sqlite3.Connection) -> set[str]:
        return {name for name, paused in conn.execute(Q["all_queues"]) if paused}

    def workers(self, conn: sqlite3.Connection) -> list[WorkerInfo]:
        out = []
        for info, started_at, last_seen_at in conn.execute(Q["workers"]):
            data = loads(info)
            data["queues"] = tuple(data["queues"])
            out.append(WorkerInfo(**data, started_at=started_at, last_seen_at=last_seen_at))
        return out

    def events(self, conn: sqlite3.Connection, after: int, limit: int,
               job_id: str | None) -> list[Event]:
        if job_id is None:
            found = conn.execute(Q["events"], {"after": after, "limit": limit})
        else:
            found = conn.execute(Q["job_events"], {"job_id": job_id, "after": after,
                                                  "limit": limit})
        return [rows.event(r) for r in found]

    def event_head(self, conn: sqlite3.Connection) -> int:
        head: int = conn.execute(Q["event_head"]).fetchone()[0]
        return head

    def act(self, conn: sqlite3.Connection, action: str, where: JobFilter) -> list[str]:
        """cancel / retry / promote / remove on every job the filter selects."""
        condition, params = where_sql(where)
        with self.transaction(conn) as now:
            params["now"] = now
            if action == "cancel":
                ids = [r[0] for r in conn.execute(Q["cancel_pending"].format(where=condition),
                                                  params)]
                ids += [r[0] for r in conn.execute(Q["cancel_active"].format(where=condition),
                                                   params)]
                if ids:
                    fail_dependents(conn, ids, now)
                return ids
            if action == "remove":  # flows: dependents of an unfinished job are not left
                ended = [r[0] for r in conn.execute(
                    Q["flow_remove_parents"].format(where=condition), params)]
                if ended:
                    fail_dependents(conn, ended, now)
            ids = [r[0] for r in conn.execute(Q[action].format(where=condition), params)]
            if action == "retry" and ids:
                revive_dependents(conn, ids)
            return ids

    def set_paused(self, conn: sqlite3.Connection, queue: str, paused: bool) -> None:
        with self.transaction(conn):
            conn.execute(Q["set_paused"], {"queue": queue, "paused": int(paused)})


    # -- flow control (conveyor/flow; the claim's part is flow.py) -------------------
    def declare_limits(self, conn: sqlite3.Connection,
                       declared: Sequence[tuple[str, str, dict[str, Any]]]) -> None:
        with self.transaction(conn):
            conn.executemany(Q["flow_declare"], [
                {"queue": queue, "name": name, "declared": dumps(limit)}
                for queue, name, limit in declared])

    def set_limit(self, conn: sqlite3.Connection, queue: str, name: str,
                  limit: dict[str, Any] | None) -> None:
        with self.transaction(conn):
            conn.execute(Q["flow_override"], {"queue": queue, "name": name,
                                              "override": None if limit is None
                                              else dumps(limit)})
            # a changed limit may free blocked groups: let the next claim judge them again
            conn.execute("UPDATE flow_groups SET blocked_until = 0, parked_on = NULL "
                         "WHERE queue = ?", (queue,))

    def limits(self, conn: sqlite3.Connection) -> list[LimitInfo]:
        with self.transaction(conn) as now:
            return flow.limits(conn, Q, now)

    def flow_blockers(self, conn: sqlite3.Connection, job_id: str) -> list[dict[str, Any]]:
        with self.transaction(conn) as now:
            row = conn.execute("SELECT queue, flow, state FROM jobs WHERE id = ?",
                               (job_id,)).fetchone()
            if row is None or row[1] is None or row[2] != "waiting":
                return []
            return flow.explain(conn, Q, row[0], row[1], now)


def _worker_json(worker: WorkerInfo) -> str:
    return dumps({
        "id": worker.id, "host": worker.host, "pid": worker.pid, "queues": list(worker.queues),
        "concurrency": worker.concurrency, "in_flight": worker.in_flight,
        **({"group": worker.group} if worker.group else {}),  # absent: readers before groups
    })


def _existing(conn: sqlite3.Connection, new: NewJob) -> Enqueued:
    """The job that kept `new` from being stored: it holds the key (perhaps from the same
    batch), or has the id."""
    existing = None
    if new.key is not None:
        existing = conn.execute(Q["by_key"], {"queue": new.queue, "key": new.key}).fetchone()
    if existing is None:
        existing = conn.execute(Q["by_id"], {"id": new.id}).fetchone()
    return Enqueued(rows.job(existing), False)


def fail_dependents(conn: sqlite3.Connection, ended: list[str], now: int) -> None:
    """Flows: end, level by level, the dependents that failed or cancelled jobs among
    `ended` hold by a "fail" or "skip" edge (a job ended here ends its own in turn).
    Inside the caller's transaction; jobs without dependents cost one empty probe."""
    while ended:
        ended = [row[0] for row in conn.execute(Q["flow_fail_dependents"],
                                                {"parents": dumps(ended), "now": now})]


def revive_dependents(conn: sqlite3.Connection, retried: list[str]) -> None:
    """Flows: the dependents the retried jobs had ended wait for them again, level by
    level (unless another failed dependency still holds them)."""
    while retried:
        retried = [row[0] for row in conn.execute(Q["flow_revive_dependents"],
                                                  {"parents": dumps(retried)})]


def _add_columns(conn: sqlite3.Connection) -> None:
    """Columns added since a database was created (before the schema's indexes use them)."""
    for table, column, declaration in (("jobs", "flow", "TEXT"), ("jobs", "flow_id", "TEXT"),
                                       ("jobs", "parents", "TEXT"),
                                       ("jobs", "waits", "INTEGER NOT NULL DEFAULT 0"),
                                       ("jobs", "dependents", "INTEGER"),
                                       ("queues", "flow", "INTEGER NOT NULL DEFAULT 0"),
                                       ("jobs", "dedup", "TEXT"),
                                       ("jobs", "expires_at", "INTEGER")):
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if present and column not in present:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")


def _statements(script: str) -> Iterator[str]:
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            yield buffer
            buffer = ""
