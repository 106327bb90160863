"""What conveyor's SQLite enqueue costs inside SQLite, piece by piece.

Runs conveyor's own schema and enqueue statement (imported from the store) on fresh files
with parts taken away one at a time, so each line shows what that part costs per job:

    .venv/bin/python bench/sql_costs.py [--jobs N]

- bulk: N inserts in one transaction (statement per row, as the store does), vs
  executemany;
- single: one transaction per job (BEGIN IMMEDIATE, now, INSERT, COMMIT), and the bytes
  each commit appends to the WAL.

A diagnostic for whoever tunes the store, not part of run.py's table.
"""

from __future__ import annotations

import argparse
import os
import re
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

from conveyor.backends.sqlite import store

ENQUEUE = store.Q["enqueue"]
NO_RETURNING = re.sub(r"\s+RETURNING .*$", "", ENQUEUE, flags=re.S)


def schema_variant(drop_trigger: bool = False, plain_id: bool = False) -> list[str]:
    statements = list(store._statements(store.SCHEMA))
    if plain_id:
        statements = [s.replace("id               TEXT    NOT NULL UNIQUE",
                                "id               TEXT    NOT NULL") for s in statements]
    if drop_trigger:
        statements = [s for s in statements if "TRIGGER IF NOT EXISTS jobs_inserted" not in s]
    return statements


def params(now: int) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "queue": "default", "task": "noop", "args": "[]",
            "kwargs": "{}", "priority": 0, "key": None, "max_attempts": 3, "max_stalls": 1,
            "timeout": None, "backoff": '{"kind":"exponential"}', "meta": "{}", "now": now,
            "scheduled_at": now}


def connect(folder: str, statements: list[str]) -> sqlite3.Connection:
    conn = sqlite3.connect(os.path.join(folder, f"{uuid.uuid4().hex}.db"),
                           isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")  # so the WAL size tells bytes per commit
    for statement in statements:
        conn.execute(statement)
    return conn


def bulk(conn: sqlite3.Connection, n: int, sql: str, many: bool, fetch: bool) -> float:
    now = int(time.time() * 1000)
    rows = [params(now) for _ in range(n)]
    start = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    if many:
        conn.executemany(sql, rows)
    else:
        for row in rows:
            cursor = conn.execute(sql, row)
            if fetch:
                cursor.fetchone()
    conn.execute("COMMIT")
    return (time.perf_counter() - start) / n * 1e6


def single(conn: sqlite3.Connection, folder: str, n: int, sql: str,
           fetch: bool) -> tuple[float, float]:
    path = conn.execute("PRAGMA database_list").fetchone()[2]
    wal_before = os.path.getsize(path + "-wal")
    now_sql = store.Q["now"]
    start = time.perf_counter()
    for _ in range(n):
        conn.execute("BEGIN IMMEDIATE")
        now = conn.execute(now_sql).fetchone()[0]
        cursor = conn.execute(sql, params(now))
        if fetch:
            cursor.fetchone()
        conn.execute("COMMIT")
    per_job = (time.perf_counter() - start) / n * 1e6
    return per_job, (os.path.getsize(path + "-wal") - wal_before) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--single", type=int, default=3_000)
    args = parser.parse_args()
    variants: list[tuple[str, Callable[[], list[str]], str, bool]] = [
        ("conveyor's enqueue (RETURNING all columns)", schema_variant, ENQUEUE, True),
        ("  without RETURNING", schema_variant, NO_RETURNING, False),
        ("  without RETURNING and the jobs_inserted event trigger",
         lambda: schema_variant(drop_trigger=True), NO_RETURNING, False),
        ("  ... and without the UNIQUE index on the text id",
         lambda: schema_variant(drop_trigger=True, plain_id=True), NO_RETURNING, False),
    ]
    print(f"{'':60} {'bulk µs/job':>12} {'executemany':>12} {'single µs/job':>14} "
          f"{'WAL B/commit':>13}")
    with tempfile.TemporaryDirectory(prefix="bench-sql-") as folder:
        for label, make, sql, fetch in variants:
            one = bulk(connect(folder, make()), args.jobs, sql, many=False, fetch=fetch)
            many = "—"
            if not fetch:
                many = f"{bulk(connect(folder, make()), args.jobs, sql, True, False):.1f}"
            per_job, wal = single(connect(folder, make()), folder, args.single, sql, fetch)
            print(f"{label:60} {one:12.1f} {many:>12} {per_job:14.1f} {wal:13.0f}")


if __name__ == "__main__":
    main()
