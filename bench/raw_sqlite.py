"""The floor under every SQLite queue: plain ``sqlite3`` in WAL mode, no queue library.

Three shapes, each on a fresh database file:

- single: one small-row INSERT + COMMIT per job (what enqueue-one-at-a-time costs at least);
- bulk: N rows in one transaction (what bulk enqueue costs at least);
- claim+settle: a claim of 100 waiting rows and the settling of the previous 100 in one
  ``BEGIN IMMEDIATE`` transaction, the shape of conveyor's fetch.

Run on its own: ``python bench/raw_sqlite.py [--jobs N]`` prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

SCHEMA = (
    "CREATE TABLE jobs (id INTEGER PRIMARY KEY, queue TEXT NOT NULL, task TEXT NOT NULL, "
    "args TEXT NOT NULL, state TEXT NOT NULL, token TEXT, result TEXT)",
    "CREATE INDEX jobs_waiting ON jobs (queue, id) WHERE state = 'waiting'",
)
INSERT = "INSERT INTO jobs (queue, task, args, state) VALUES ('default', 'noop', '[]', 'waiting')"
CLAIM = (
    "UPDATE jobs SET state = 'active', token = lower(hex(randomblob(8))) WHERE id IN "
    "(SELECT id FROM jobs WHERE state = 'waiting' AND queue = 'default' ORDER BY id LIMIT ?) "
    "RETURNING id, token"
)
SETTLE = "UPDATE jobs SET state = 'completed', result = 'null' WHERE id = ? AND token = ?"


@contextmanager
def database(synchronous: str) -> Iterator[sqlite3.Connection]:
    with tempfile.TemporaryDirectory(prefix="bench-raw-") as folder:
        conn = sqlite3.connect(os.path.join(folder, "raw.db"), isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        for statement in SCHEMA:
            conn.execute(statement)
        try:
            yield conn
        finally:
            conn.close()


def single_inserts(n: int, synchronous: str) -> float:
    with database(synchronous) as conn:
        start = time.perf_counter()
        for _ in range(n):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(INSERT)
            conn.execute("COMMIT")
        return n / (time.perf_counter() - start)


def bulk_insert(n: int, synchronous: str) -> float:
    with database(synchronous) as conn:
        start = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(INSERT, ([] for _ in range(n)))
        conn.execute("COMMIT")
        return n / (time.perf_counter() - start)


def claim_and_settle(n: int, synchronous: str, batch: int = 100) -> float:
    with database(synchronous) as conn:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(INSERT, ([] for _ in range(n)))
        conn.execute("COMMIT")
        start = time.perf_counter()
        held: list[tuple[int, str]] = []
        done = 0
        while True:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(SETTLE, held)
            done += len(held)
            held = conn.execute(CLAIM, (batch,)).fetchall()
            conn.execute("COMMIT")
            if not held:
                break
        assert done == n, (done, n)
        return n / (time.perf_counter() - start)


def measure(jobs: int, single_jobs: int) -> dict[str, Any]:
    return {
        "synchronous": "NORMAL (conveyor's default)",
        "single_insert_commit_per_s": single_inserts(single_jobs, "NORMAL"),
        "single_insert_commit_full_per_s": single_inserts(max(single_jobs // 5, 200), "FULL"),
        "bulk_rows_per_s": bulk_insert(jobs, "NORMAL"),
        "claim_settle_batch100_per_s": claim_and_settle(jobs, "NORMAL"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--single", type=int, default=10_000)
    args = parser.parse_args()
    print(json.dumps(measure(args.jobs, args.single), indent=2))


if __name__ == "__main__":
    main()
