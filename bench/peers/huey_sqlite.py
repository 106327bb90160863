"""Huey with its SQLite storage, measured the way bench/conveyor_bench.py measures conveyor.

Runs in Huey's own virtualenv (bench/.venvs/huey) and prints JSON on stdout:

    bench/.venvs/huey/bin/python bench/peers/huey_sqlite.py [--jobs N] [--workers W]

- enqueue one at a time: ``noop()`` (Huey has no bulk enqueue: ``task.map()`` calls
  enqueue once per item, one transaction each; measured as such);
- throughput: N pre-enqueued no-op tasks, one ``huey_consumer`` process with W thread
  workers and quiet logging, from the first task starting to the N-th completing;
- pickup latency on an idle consumer, at its defaults and when polling every 1 ms, and
  that consumer's idle CPU; consumer RSS after the throughput run.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from common import (  # noqa: E402
    Child,
    exit_on_sigterm,
    idle_cpu_percent,
    note,
    percentile,
    rss_mib,
)

CONSUMER = Path(sys.executable).parent / "huey_consumer"
APP = "huey_app.huey"
FAST_POLL = ["--delay", "0.001", "--max-delay", "0.001"]
_SYNC_NAMES = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


@contextmanager
def fresh_db() -> Iterator[Path]:
    """A temp database that huey_app (imported afterwards) will use."""
    with tempfile.TemporaryDirectory(prefix="bench-huey-") as folder:
        db = Path(folder) / "huey.db"
        os.environ["HUEY_BENCH_DB"] = str(db)
        yield db


def load_app(db: Path) -> Any:
    """A fresh import of huey_app bound to `db` (its SqliteHuey is made at import)."""
    sys.modules.pop("huey_app", None)
    os.environ["HUEY_BENCH_DB"] = str(db)
    import huey_app

    return huey_app


def consumer(db: Path, flags: list[str], extra_env: dict[str, str] | None = None) -> Child:
    env = {"HUEY_BENCH_DB": str(db), "PYTHONPATH": str(HERE), **(extra_env or {})}
    return Child([str(CONSUMER), APP, *flags], env=env, log_path=db.parent / "consumer.log",
                 cwd=HERE)


def durability(db: Path) -> dict[str, Any]:
    app = load_app(db)
    storage = app.huey.storage
    conn = storage.conn
    sync = conn.execute("PRAGMA synchronous").fetchone()[0]
    mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    return {
        "storage": f"{type(app.huey).__name__} / {type(storage).__name__}",
        "journal_mode": mode,
        "synchronous": _SYNC_NAMES.get(sync, str(sync)),
        "fsync_option": storage._fsync,
        "begin": storage.begin_sql,
        "meaning": f"fsync={storage._fsync} leaves SQLite's default; "
                   + ("FULL in WAL mode fsyncs the WAL at every commit" if sync == 2
                      else "see SQLite's PRAGMA synchronous"),
        "huey_version": __import__("huey").__version__,
        "sqlite_version": sqlite3.sqlite_version,
    }


def enqueue_single(n: int) -> float:
    with fresh_db() as db:
        app = load_app(db)
        for _ in range(10):
            app.noop()
        start = time.perf_counter()
        for _ in range(n):
            app.noop()
        return n / (time.perf_counter() - start)


def enqueue_map(n: int) -> float:
    with fresh_db() as db:
        app = load_app(db)
        app.noop()
        start = time.perf_counter()
        app.noop.map([() for _ in range(n)])
        return n / (time.perf_counter() - start)


def preload(app: Any, n: int) -> None:
    """Store n no-op tasks in one transaction (setup, not measured): the rows and
    messages `noop()` would store, without paying an fsync per task."""
    huey = app.huey
    rows = [(huey.storage.name, huey.storage.to_blob(huey.serialize_task(app.noop.s())), 0)
            for _ in range(n)]
    with huey.storage.db(commit=True) as cursor:
        cursor.executemany("insert into task (queue, data, priority) values (?, ?, ?)", rows)
    assert huey.pending_count() == n
    huey.storage.close()


def throughput(n: int, workers: int) -> dict[str, Any]:
    with fresh_db() as db:
        preload(load_app(db), n)
        done = db.parent / "done.json"
        flags = ["-w", str(workers), "-k", "thread", "-q"]
        expect = {"HUEY_BENCH_EXPECT": str(n), "HUEY_BENCH_DONE": str(done)}
        with consumer(db, flags, expect) as proc:
            spawned = time.perf_counter()
            deadline = spawned + 600
            while not done.exists():
                time.sleep(0.05)
                proc.check_alive()
                if time.perf_counter() > deadline:
                    raise TimeoutError("huey consumer did not finish in 600 s")
            wall = time.perf_counter() - spawned
            rss = rss_mib(proc.pid)
        span = json.loads(done.read_text())
        busy = span["last"] - span["first"]
        return {"per_s": n / busy, "jobs": n, "first_pickup_to_last_done_s": busy,
                "spawn_to_all_seen_done_s": wall, "rss_mib_after": rss,
                "consumer_flags": " ".join(flags)}


def pickup(samples: int, pause: float, idle_seconds: float, flags: list[str]) -> dict[str, Any]:
    with fresh_db() as db:
        app = load_app(db)
        with consumer(db, flags) as proc:
            for _ in range(5):
                app.stamp()(blocking=True, timeout=30)
            time.sleep(1.0)
            sent = []
            for _ in range(samples):
                before = time.time()
                sent.append((before, app.stamp()))
                time.sleep(pause)
            latencies = [(result(blocking=True, timeout=30) - before) * 1000
                         for before, result in sent]
            proc.check_alive()
            time.sleep(1.0)
            cpu = idle_cpu_percent(proc.pid, idle_seconds)
            rss = rss_mib(proc.pid)
    return {"p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
            "max_ms": max(latencies), "samples": len(latencies), "pause_ms": pause * 1000,
            "idle_cpu_percent": cpu, "idle_seconds": idle_seconds, "idle_rss_mib": rss,
            "consumer_flags": " ".join(flags) or "(none: defaults)"}


PARTS = ("enqueue", "map", "throughput", "pickup")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--single", type=int, default=5_000)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--pause", type=float, default=0.02)
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    parser.add_argument("--workers", default="1,2,4",
                        help="consumer worker threads; a list is swept on a short run first "
                             "and the fastest is used")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"comma-separated subset of {','.join(PARTS)}")
    args = parser.parse_args()
    exit_on_sigterm()
    parts = [p for p in args.parts.split(",") if p]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s): {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {}
    with fresh_db() as db:
        out["durability"] = durability(db)
    if "enqueue" in parts:
        note("huey: enqueue one at a time")
        out["enqueue_single_per_s"] = enqueue_single(args.single)
    if "map" in parts:
        note("huey: task.map() (no bulk enqueue API)")
        out["enqueue_map_per_s"] = enqueue_map(args.single)
    if "throughput" in parts:
        candidates = [int(w) for w in args.workers.split(",")]
        workers = candidates[0]
        if len(candidates) > 1:
            sweep_jobs = min(args.jobs, 5_000)
            note(f"huey: choosing worker threads among {candidates} ({sweep_jobs} tasks each)")
            sweep = {w: throughput(sweep_jobs, w)["per_s"] for w in candidates}
            workers = max(sweep, key=lambda w: sweep[w])
            out["worker_sweep_per_s"] = sweep
        note(f"huey: throughput of {args.jobs} no-op tasks, {workers} worker thread(s)")
        out["throughput"] = throughput(args.jobs, workers)
    if "pickup" in parts:
        note(f"huey: pickup latency at defaults ({args.samples} samples)")
        out["pickup_default"] = pickup(args.samples, args.pause, args.idle_seconds, [])
        note("huey: pickup latency polling every 1 ms")
        out["pickup_1ms"] = pickup(args.samples, args.pause, args.idle_seconds, FAST_POLL)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
