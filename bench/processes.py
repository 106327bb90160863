"""Throughput of `conveyor worker -p N`: no-op jobs drained by 1, 2 and 4 worker processes
under one supervisor, on SQLite and on Redis.

    python bench/processes.py [--jobs 20000] [--processes 1,2,4] [--backends sqlite,redis]
    python bench/processes.py --task redis_call --loop asyncio,uvloop --processes 1

Each run pre-enqueues the jobs on a fresh database (a temp SQLite file, or a private
redis-server flushed between runs), starts ``conveyor worker -p N`` as a separate process
group and polls the queue counts. The rate is taken between the moment 5 % of the jobs
are done and the moment the last one is, so process start-up (spawn, imports) is left
out. Prints JSON: jobs/s and the worker processes' CPU per job (µs, the supervisor and
all its children, over the same span) per backend, process count and event loop, and
the machine's CPU count (the engine saturates when the CPUs do: the backend, the driver
and every worker process share them). ``--task redis_call`` runs jobs whose body makes
one asyncio Redis call (INCR) against the benchmark's own redis-server.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import BENCH_DIR, Child, cpu_seconds, exit_on_sigterm, note
from conveyor_app import BenchApp, build
from redis_run import RedisServer, tree

POLL = 0.05


def _left(bench: BenchApp) -> int:
    info = {q.name: q for q in bench.app.queues()}.get("default")
    if info is None:
        return 0
    counts = {state.value: n for state, n in info.counts.items()}
    if counts["failed"] or counts["cancelled"]:
        raise RuntimeError("jobs failed or were cancelled; see the worker log")
    return counts["waiting"] + counts["delayed"] + counts["active"]


def _tree_cpu(session: int, seen: dict[int, float]) -> None:
    """Latest CPU seconds of each process of the session (exited ones keep their last)."""
    for pid in tree(session):
        with contextlib.suppress(OSError, ValueError):
            seen[pid] = cpu_seconds(pid)


def drain(url: str, jobs: int, processes: int, concurrency: int, log: Path, *,
          task: str = "noop", loop: str = "auto", env: dict[str, str] | None = None
          ) -> tuple[float, float]:
    """(jobs per second, worker CPU µs per job) of `processes` worker processes over
    `jobs` pre-enqueued jobs of `task`."""
    bench = build(url)
    try:
        made = getattr(bench, task)
        for start in range(0, jobs, 5_000):
            bench.app.enqueue_many([made.prepare() for _ in range(min(5_000, jobs - start))])
        argv = [sys.executable, "-m", "conveyor", "worker", "conveyor_app:app", "-q", "default",
                "-c", str(concurrency), "-p", str(processes), "--loop", loop]
        cpu: dict[int, float] = {}
        with Child(argv, env={"CONVEYOR_URL": url, **(env or {})}, log_path=log,
                   cwd=BENCH_DIR) as proc:
            began = None
            deadline = time.monotonic() + 600
            while True:
                time.sleep(POLL)
                proc.check_alive()
                _tree_cpu(proc.pid, cpu)
                left = _left(bench)
                if began is None and left <= jobs * 0.95:
                    began, left_then = time.perf_counter(), left
                    cpu_then = sum(cpu.values())
                if left == 0:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{left} jobs unfinished after 600 s")
            assert began is not None
            rate = left_then / (time.perf_counter() - began)
            _tree_cpu(proc.pid, cpu)
            return rate, (sum(cpu.values()) - cpu_then) * 1e6 / left_then
    finally:
        bench.app.close()


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--processes", default="1,2,4")
    parser.add_argument("--backends", default="sqlite,redis")
    parser.add_argument("--task", default="noop", choices=["noop", "redis_call"])
    parser.add_argument("--loop", default="auto", help="comma-separated: auto,asyncio,uvloop")
    args = parser.parse_args()
    results: dict[str, Any] = {"cpus": os.cpu_count(), "jobs": args.jobs, "task": args.task,
                               "concurrency_per_process": args.concurrency, "runs": []}
    with tempfile.TemporaryDirectory(prefix="bench-processes-") as tmp:
        folder = Path(tmp)
        redis = RedisServer(folder) if "redis" in args.backends or args.task == "redis_call" \
            else None
        try:
            for backend in args.backends.split(","):
                for loop in args.loop.split(","):
                    for n in (int(p) for p in args.processes.split(",")):
                        run = f"{backend}-{loop}-p{n}"
                        if redis is not None:
                            redis.flush()
                        url = redis.url if backend == "redis" and redis else \
                            f"sqlite:///{folder}/{run}.db"
                        env = {"BENCH_REDIS_URL": redis.url} if redis else {}
                        rate, cpu = drain(url, args.jobs, n, args.concurrency,
                                          folder / f"{run}.log", task=args.task, loop=loop,
                                          env=env)
                        note(f"{backend} --loop {loop} -p {n}: {rate:,.0f} jobs/s, "
                             f"{cpu:.0f} us worker CPU per job")
                        results["runs"].append({"backend": backend, "loop": loop,
                                                "processes": n, "jobs_per_s": round(rate),
                                                "worker_cpu_us_per_job": round(cpu, 1)})
        finally:
            if redis is not None:
                redis.stop()
    json.dump(results, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
