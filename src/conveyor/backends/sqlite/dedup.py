"""Dedup modes and expiry on SQLite, inside the enqueue's and the claim's transactions.

A batch holding a job with a dedup mode or an expiry takes this path (the store's
batch insert stays as it was for everyone else). Its jobs are stored one by one, in
order, so a later job of the batch folds into an earlier one exactly as a later call
would. Each dedup job first looks at the newest job that took its key (`dedup_holder`)
and folds into it when its mode says so (`folds`, the same table as Redis'
includes/dedup.lua; conveyor/dedup.py says it in words). keep_last's copy of a running
job waits parked until that job leaves `active`.

The claim's transaction first cancels jobs past their expiry that never started, and
makes parked copies whose key no longer runs waiting (`before_claim`), as fetch.lua does
on Redis: when no job uses these options, one statement that finds nothing in two
index seeks.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from ...dedup import PARKED_AT, DedupSpec
from ..base import Enqueued, NewJob
from . import rows

PENDING = ("waiting", "delayed")
UNFINISHED = ("waiting", "delayed", "active")


def folds(spec: DedupSpec, state: str, started: bool, created_at: int, now: int) -> bool:
    """Whether an enqueue with `spec` folds into the key's newest job."""
    if spec.mode == "finished":
        return state in UNFINISHED
    if spec.mode == "throttle":
        return now < created_at + spec.window_ms
    return state in PENDING and not started  # started, debounce, keep_last


def before_claim(conn: sqlite3.Connection, q: dict[str, str], now: int) -> None:
    params = {"now": now}
    expiring, parked = conn.execute(q["before_claim"], params).fetchone()
    if expiring:
        conn.execute(q["expire_due"], params)
        conn.execute(q["expire_spent"], params)
    if parked:
        conn.execute(q["dedup_unpark"], params)


def enqueue(conn: sqlite3.Connection, q: dict[str, str], jobs: Sequence[NewJob],
            now: int) -> list[tuple[Enqueued | None, tuple[Any, ...] | None]]:
    """Each job: (the job it folded into, None) or (None, the row now inserted) or
    (None, None) when its key or id was taken (the store answers those as usual)."""
    out: list[tuple[Enqueued | None, tuple[Any, ...] | None]] = []
    for new in jobs:
        park = False
        if new.dedup is not None:
            folded, park = _fold(conn, q, new, new.dedup, now)
            if folded is not None:
                out.append((folded, None))
                continue
        at = new.run_at_ms if new.run_at_ms is not None else now + new.delay_ms
        if park:
            at = PARKED_AT
        row = (new.id, new.queue, new.task, new.args_json, new.kwargs_json,
               "delayed" if at > now else "waiting", new.priority, new.key,
               new.max_attempts, new.max_stalls, new.timeout, new.backoff_json,
               new.meta_json, now, at)
        extra = (new.flow, None if new.dedup is None else new.dedup.key,
                 None if new.expires_ms is None else now + new.expires_ms)
        stored = conn.execute(q["enqueue_once"], row + extra).rowcount == 1
        out.append((None, row if stored else None))
    return out


def _fold(conn: sqlite3.Connection, q: dict[str, str], new: NewJob, spec: DedupSpec,
          now: int) -> tuple[Enqueued | None, bool]:
    """(the job folded into, None) or (None, whether the new job waits parked)."""
    holder = conn.execute(q["dedup_holder"], {"queue": new.queue,
                                              "dedup": spec.key}).fetchone()
    if holder is None:
        return None, False
    seq, state, tries, created_at, _ = holder
    if not folds(spec, state, tries > 0, created_at, now):
        return None, spec.mode == "keep_last" and state == "active"
    due = None
    if spec.mode == "debounce":
        due = now + spec.window_ms
        if spec.max_wait_ms is not None:
            due = min(due, created_at + spec.max_wait_ms)
    params = {"seq": seq, "now": now, "due": due,
              "args": new.args_json if spec.replace else None,
              "kwargs": new.kwargs_json if spec.replace else None}
    if due is None and not spec.replace:
        row = conn.execute(q["by_seq"], {"seq": seq}).fetchone()
    else:
        row = conn.execute(q["dedup_fold"], params).fetchone()
    return Enqueued(rows.job(row), False), False
