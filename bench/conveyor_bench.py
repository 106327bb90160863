"""conveyor on its embedded SQLite backend: enqueue, throughput, pickup latency, idle cost.

Every measurement gets a fresh temp folder and database file, default settings (lease,
keeper heartbeats, maintenance, events: nothing conveyor promises is switched off), and
workers run as separate OS processes (bench/conveyor_worker.py).

Run on its own: ``python bench/conveyor_bench.py [--jobs N] ...`` prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import (
    BENCH_DIR,
    Child,
    exit_on_sigterm,
    idle_cpu_percent,
    note,
    percentile,
    rss_mib,
)
from conveyor_app import BenchApp, build

WORKER_SCRIPT = BENCH_DIR / "conveyor_worker.py"
POLL_INTERVAL = 0.05  # how often the driver reads queue counts while a worker drains


@dataclass
class Settings:
    jobs: int = 20_000  # pre-enqueued for the throughput runs, and the bulk enqueue size
    single: int = 5_000  # one-at-a-time enqueues per variant
    samples: int = 300  # pickup latency samples
    pause: float = 0.02  # between pickup samples
    idle_seconds: float = 5.0
    concurrency: int = 100
    thread_variant: bool = True
    profile_dir: Path | None = None  # run throughput workers under cProfile, stats here
    worker_command: str = "cli"  # "cli": python -m conveyor worker; "script": ours


@contextmanager
def fresh_app(query: str = "") -> Iterator[tuple[BenchApp, str]]:
    with tempfile.TemporaryDirectory(prefix="bench-conveyor-") as folder:
        url = f"sqlite:///{folder}/bench.db{query}"
        bench = build(url)
        try:
            yield bench, url
        finally:
            bench.app.close()


def cli_available() -> bool:
    return importlib.util.find_spec("conveyor.cli") is not None


def worker(url: str, settings: Settings, log: Path, profile: Path | None = None) -> Child:
    """One worker process: `conveyor worker` when the CLI exists, else our own script
    (always ours under cProfile)."""
    if settings.worker_command == "cli" and profile is None and cli_available():
        argv = [sys.executable, "-m", "conveyor", "worker", "conveyor_app:app",
                "-q", "default", "-c", str(settings.concurrency)]
    else:
        argv = [sys.executable, str(WORKER_SCRIPT), "-c", str(settings.concurrency)]
        if profile is not None:
            argv += ["--profile", str(profile)]
    return Child(argv, env={"CONVEYOR_URL": url}, log_path=log, cwd=BENCH_DIR)


# -- producers --------------------------------------------------------------------------
def enqueue_sync(n: int, query: str = "") -> float:
    with fresh_app(query) as (bench, _):
        for _ in range(10):  # opens the database; not what we time
            bench.noop.enqueue()
        start = time.perf_counter()
        for _ in range(n):
            bench.noop.enqueue()
        return n / (time.perf_counter() - start)


def enqueue_async(n: int) -> float:
    async def go(bench: BenchApp) -> float:
        for _ in range(10):
            await bench.noop.aenqueue()
        start = time.perf_counter()
        for _ in range(n):
            await bench.noop.aenqueue()
        return n / (time.perf_counter() - start)

    with fresh_app() as (bench, _):
        return asyncio.run(go(bench))


def enqueue_bulk(n: int) -> dict[str, float]:
    """prepare() + enqueue_many() of n jobs in one call; also each part alone."""
    with fresh_app() as (bench, _):
        bench.noop.enqueue()
        start = time.perf_counter()
        prepared = [bench.noop.prepare() for _ in range(n)]
        mid = time.perf_counter()
        bench.app.enqueue_many(prepared)
        end = time.perf_counter()
        return {"per_s": n / (end - start), "store_only_per_s": n / (end - mid),
                "prepare_only_per_s": n / (mid - start)}


# -- workers ----------------------------------------------------------------------------
def _unfinished(bench: BenchApp) -> tuple[int, int]:
    """(waiting + delayed + active, failed + cancelled) of the default queue.

    Completed jobs are not counted up: the worker's maintenance prunes completed jobs
    beyond the newest 10,000 per queue (default retention), so that count can shrink.
    """
    info = {q.name: q for q in bench.app.queues()}.get("default")
    if info is None:
        return 0, 0
    counts = {state.value: n for state, n in info.counts.items()}
    return (counts["waiting"] + counts["delayed"] + counts["active"],
            counts["failed"] + counts["cancelled"])


def _busy_span(db: Path) -> float:
    """Seconds from the first claim to the last completion, on the backend's own clock.

    Read from the event stream (the jobs_* triggers write one event per state change)
    because retention may already have pruned the earliest completed jobs' rows.
    """
    with contextlib.closing(sqlite3.connect(db)) as conn:
        first: int = conn.execute(
            "SELECT min(at) FROM events WHERE kind = 'active'").fetchone()[0]
        last: int = conn.execute(
            "SELECT max(at) FROM events WHERE kind = 'completed'").fetchone()[0]
    return (last - first) / 1000


def throughput(settings: Settings, task_name: str) -> dict[str, Any]:
    """Pre-enqueue N jobs, start one worker process, wait until none is unfinished."""
    n = settings.jobs
    with fresh_app() as (bench, url):
        task = getattr(bench, task_name)
        for start in range(0, n, 5_000):
            bench.app.enqueue_many([task.prepare() for _ in range(min(5_000, n - start))])
        folder = Path(url.removeprefix("sqlite:///")).parent
        profile = None
        if settings.profile_dir is not None:
            profile = settings.profile_dir / f"worker-{task_name}.prof"
        proc = worker(url, settings, folder / "worker.log", profile)
        try:
            spawned = time.perf_counter()
            deadline = spawned + 300
            while True:
                time.sleep(POLL_INTERVAL)
                proc.check_alive()
                left, bad = _unfinished(bench)
                if bad:
                    raise RuntimeError(f"{bad} jobs failed or were cancelled; see worker log")
                if left == 0:
                    break
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"{left} of {n} jobs still unfinished after 300 s")
            wall = time.perf_counter() - spawned
            rss = rss_mib(proc.pid)
        finally:
            proc.stop()
        busy = _busy_span(folder / "bench.db")
        return {"per_s": n / busy, "jobs": n, "first_pickup_to_last_done_s": busy,
                "spawn_to_all_seen_done_s": wall, "rss_mib_after": rss,
                "concurrency": settings.concurrency}


def pickup_and_idle(settings: Settings) -> dict[str, Any]:
    """Latency from just before enqueue to the task starting, on an idle worker; then the
    idle worker's CPU use."""
    with fresh_app() as (bench, url):
        folder = Path(url.removeprefix("sqlite:///")).parent
        with worker(url, settings, folder / "worker.log") as proc:
            for _ in range(5):  # the worker is up and listening once these come back
                bench.stamp.enqueue().result(timeout=30)
            time.sleep(1.0)
            sent: list[tuple[float, Any]] = []
            for _ in range(settings.samples):
                before = time.time()
                sent.append((before, bench.stamp.enqueue()))
                time.sleep(settings.pause)
            latencies = [(handle.result(timeout=30) - before) * 1000 for before, handle in sent]
            proc.check_alive()
            time.sleep(1.0)
            cpu = idle_cpu_percent(proc.pid, settings.idle_seconds)
            rss = rss_mib(proc.pid)
    return {
        "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies), "samples": len(latencies), "pause_ms": settings.pause * 1000,
        "idle_cpu_percent": cpu, "idle_seconds": settings.idle_seconds, "idle_rss_mib": rss,
    }


PARTS = ("enqueue", "bulk", "throughput", "pickup")


def measure(settings: Settings, parts: Sequence[str] = PARTS) -> dict[str, Any]:
    command = ("python -m conveyor worker conveyor_app:app -q default"
               if settings.worker_command == "cli" else "bench/conveyor_worker.py")
    out: dict[str, Any] = {"settings": {
        "url": "sqlite:///<tmp>/bench.db (defaults: WAL, synchronous=NORMAL)",
        "worker": f"one process, {command}, Worker defaults but "
                  f"concurrency={settings.concurrency}",
    }}
    if "enqueue" in parts:
        note("conveyor: enqueue one at a time (sync)")
        out["enqueue_sync_per_s"] = enqueue_sync(settings.single)
        note("conveyor: enqueue one at a time (sync) with ?synchronous=FULL, Huey's default")
        out["enqueue_sync_full_per_s"] = enqueue_sync(max(settings.single // 5, 200),
                                                      "?synchronous=FULL")
        note("conveyor: enqueue one at a time (async)")
        out["enqueue_async_per_s"] = enqueue_async(settings.single)
    if "bulk" in parts:
        note(f"conveyor: bulk enqueue of {settings.jobs}")
        out["enqueue_bulk"] = enqueue_bulk(settings.jobs)
    if "throughput" in parts:
        note(f"conveyor: throughput of {settings.jobs} async no-op jobs")
        out["throughput_async"] = throughput(settings, "noop")
        if settings.thread_variant:
            note(f"conveyor: throughput of {settings.jobs} def no-op jobs (thread executor)")
            out["throughput_thread"] = throughput(settings, "noop_sync")
    if "pickup" in parts:
        note(f"conveyor: pickup latency ({settings.samples} samples) and idle CPU")
        out["pickup"] = pickup_and_idle(settings)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    defaults = Settings()
    parser.add_argument("--jobs", type=int, default=defaults.jobs)
    parser.add_argument("--single", type=int, default=defaults.single)
    parser.add_argument("--samples", type=int, default=defaults.samples)
    parser.add_argument("--idle-seconds", type=float, default=defaults.idle_seconds)
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency)
    parser.add_argument("--no-thread-variant", action="store_true")
    parser.add_argument("--profile-dir", type=Path, default=None)
    parser.add_argument("--worker-command", choices=["cli", "script"],
                        default="cli" if cli_available() else "script",
                        help="how to start the worker process (default: the CLI if present)")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"comma-separated subset of {','.join(PARTS)}")
    args = parser.parse_args()
    exit_on_sigterm()
    settings = Settings(jobs=args.jobs, single=args.single, samples=args.samples,
                        idle_seconds=args.idle_seconds, concurrency=args.concurrency,
                        thread_variant=not args.no_thread_variant,
                        profile_dir=args.profile_dir, worker_command=args.worker_command)
    parts = [p for p in args.parts.split(",") if p]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s): {', '.join(sorted(unknown))}")
    print(json.dumps(measure(settings, parts), indent=2))


if __name__ == "__main__":
    main()
