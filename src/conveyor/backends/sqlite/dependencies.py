"""Flows on SQLite: storing a flow, spawning children, reading a flow back and
cancelling what has not run.

Releasing a dependent is the trigger flow_dependency_resolved (schema.sql); ending it by
its edge's policy and reviving it when the failed dependency is retried are the store's
`fail_dependents` / `revive_dependents`. All run in the transaction of whatever settles,
rescues, cancels or retries the dependency, so no crash can separate the two.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from ...errors import InvalidFlowError
from ...jobs import Job
from ...serialization import dumps
from ..base import Lease, NewJob
from ..dependencies import check_children, check_flow
from . import rows
from .store import Q, SqliteStore, fail_dependents


def enqueue_flow(store: SqliteStore, conn: sqlite3.Connection,
                 jobs: Sequence[NewJob]) -> list[Job]:
    """All of the flow in one transaction; a reused id rolls all of it back."""
    dependents = check_flow(jobs)
    with store.transaction(conn) as now:
        before = conn.execute(Q["last_seq"]).fetchone()[0]
        inserted: list[tuple[Any, ...]] = []
        for new in jobs:
            due = new.run_at_ms if new.run_at_ms is not None else now + new.delay_ms
            state = ("waiting-children" if new.parents
                     else "delayed" if due > now else "waiting")
            inserted.append((
                new.id, new.queue, new.task, new.args_json, new.kwargs_json, state,
                new.priority, new.max_attempts, new.max_stalls, new.timeout,
                new.backoff_json, new.meta_json, now, due, new.flow, new.flow_id,
                dumps(dict(new.parents)) if new.parents else None, len(new.parents),
                1 if new.id in dependents else None))
        try:
            conn.executemany(Q["flow_enqueue"], inserted)
        except sqlite3.IntegrityError:
            raise InvalidFlowError("a job id of the flow is taken already") from None
        conn.executemany(Q["flow_edge"], [(parent, new.id, policy) for new in jobs
                                          for parent, policy in new.parents])
        conn.execute(Q["enqueued_events"], {"before": before})
        groups = {(new.queue, new.flow) for new in jobs if new.flow is not None}
        for queue in {queue for queue, _ in groups}:
            conn.execute(Q["flow_queue_on"], {"queue": queue})
        for queue, grp in sorted(groups):
            conn.execute(Q["flow_group_add"], {"queue": queue, "grp": grp})
        return [rows.job(row) for row in conn.execute(Q["flow_jobs"],
                                                      {"flow_id": jobs[0].flow_id})]


def spawn(store: SqliteStore, conn: sqlite3.Connection, lease: Lease,
          jobs: Sequence[NewJob]) -> list[Job]:
    """Children of a running job, stored with their edges to it in one transaction."""
    check_children(jobs)
    with store.transaction(conn) as now:
        row = conn.execute(Q["spawn_parent"], {"id": lease.job_id,
                                               "token": lease.token}).fetchone()
        if row is None:
            raise InvalidFlowError(f"job {lease.job_id} cannot spawn: its lease is lost")
        flow_id = row[0] or lease.job_id
        before = conn.execute(Q["last_seq"]).fetchone()[0]
        inserted = []
        for new in jobs:
            due = new.run_at_ms if new.run_at_ms is not None else now + new.delay_ms
            inserted.append((
                new.id, new.queue, new.task, new.args_json, new.kwargs_json,
                "delayed" if due > now else "waiting", new.priority, new.max_attempts,
                new.max_stalls, new.timeout, new.backoff_json, new.meta_json, now, due,
                new.flow, flow_id, None, 0, 1))
        try:
            conn.executemany(Q["flow_enqueue"], inserted)
        except sqlite3.IntegrityError:
            raise InvalidFlowError("a spawned job's id is taken already") from None
        conn.executemany(Q["flow_edge"], [(new.id, lease.job_id, "continue") for new in jobs])
        conn.execute(Q["spawn_waits"], {
            "id": lease.job_id, "flow_id": flow_id, "added": len(jobs),
            "edges": dumps({new.id: "continue" for new in jobs})})
        conn.execute(Q["enqueued_events"], {"before": before})
        ids = {new.id for new in jobs}
        return [rows.job(r) for r in conn.execute(Q["flow_jobs"], {"flow_id": flow_id})
                if r[1] in ids]


def flow_jobs(store: SqliteStore, conn: sqlite3.Connection, flow_id: str) -> list[Job]:
    return [rows.job(row) for row in conn.execute(Q["flow_jobs"], {"flow_id": flow_id})]


def cancel_flow(store: SqliteStore, conn: sqlite3.Connection, flow_id: str) -> list[str]:
    """Dependents first, one by one (each settles its own edges through the triggers),
    then the flow's waiting, delayed and running jobs as `cancel` treats them."""
    with store.transaction(conn) as now:
        ids: list[str] = []
        for (job_id,) in conn.execute(Q["flow_blocked"], {"flow_id": flow_id}).fetchall():
            if conn.execute(Q["flow_cancel_one"], {"id": job_id, "now": now}).rowcount:
                ids.append(job_id)
        params = {"now": now, "flow_id": flow_id}
        for query in ("cancel_pending", "cancel_active"):
            sql = Q[query].format(where="flow_id = :flow_id")
            ids += [r[0] for r in conn.execute(sql, params)]
        fail_dependents(conn, ids, now)
        return ids
