"""Throughput of `conveyor worker -p N`: no-op jobs drained by 1, 2 and 4 worker processes
under one supervisor, on SQLite and on Redis.

    python bench/processes.py [--jobs 20000] [--processes 1,2,4] [--backends sqlite,redis]

Each run pre-enqueues the jobs on a fresh database (a temp SQLite file, or a private
redis-server flushed between runs), starts ``conveyor worker -p N`` as a separate process
group and polls the queue counts. The rate is taken between the moment 5 % of the jobs
are done and the moment the last one is, so process start-up (spawn, imports) is left
out. Prints JSON: jobs/s per backend and process count, and the machine's CPU count
(the engine saturates when the CPUs do: the backend, the driver and every worker
process share them).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import BENCH_DIR, Child, exit_on_sigterm, note
from conveyor_app import BenchApp, build
from redis_run import RedisServer

POLL = 0.05


def _left(bench: BenchApp) -> int:
    info = {q.name: q for q in bench.app.queues()}.get("default")
    if info is None:
        return 0
    counts = {state.value: n for state, n in info.counts.items()}
    if counts["failed"] or counts["cancelled"]:
        raise RuntimeError("jobs failed or were cancelled; see the worker log")
    return counts["waiting"] + counts["delayed"] + counts["active"]


def drain(url: str, jobs: int, processes: int, concurrency: int, log: Path) -> float:
    """Jobs per second of `processes` worker processes over `jobs` pre-enqueued no-ops."""
    bench = build(url)
    try:
        for start in range(0, jobs, 5_000):
            bench.app.enqueue_many([bench.noop.prepare() for _ in range(min(5_000, jobs - start))])
        argv = [sys.executable, "-m", "conveyor", "worker", "conveyor_app:app", "-q", "default",
                "-c", str(concurrency), "-p", str(processes)]
        with Child(argv, env={"CONVEYOR_URL": url}, log_path=log, cwd=BENCH_DIR) as proc:
            began = None
            deadline = time.monotonic() + 600
            while True:
                time.sleep(POLL)
                proc.check_alive()
                left = _left(bench)
                if began is None and left <= jobs * 0.95:
                    began, left_then = time.perf_counter(), left
                if left == 0:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{left} jobs unfinished after 600 s")
            assert began is not None
            return left_then / (time.perf_counter() - began)
    finally:
        bench.app.close()


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--processes", default="1,2,4")
    parser.add_argument("--backends", default="sqlite,redis")
    args = parser.parse_args()
    counts = [int(p) for p in args.processes.split(",")]
    results: dict[str, Any] = {"cpus": os.cpu_count(), "jobs": args.jobs,
                               "concurrency_per_process": args.concurrency}
    with tempfile.TemporaryDirectory(prefix="bench-processes-") as tmp:
        folder = Path(tmp)
        for backend in args.backends.split(","):
            redis = RedisServer(folder) if backend == "redis" else None
            try:
                for n in counts:
                    if redis is not None:
                        redis.flush()
                        url = redis.url
                    else:
                        url = f"sqlite:///{folder}/p{n}.db"
                    rate = drain(url, args.jobs, n, args.concurrency, folder / f"{backend}{n}.log")
                    note(f"{backend} -p {n}: {rate:,.0f} jobs/s")
                    results.setdefault(backend, {})[str(n)] = round(rate)
            finally:
                if redis is not None:
                    redis.stop()
    json.dump(results, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
