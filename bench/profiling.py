"""Where conveyor's time goes: cProfile of the sync enqueue path, bulk enqueue, and the
worker process during a throughput run.

    .venv/bin/python bench/profiling.py [--jobs N] [--top K]

cProfile slows Python code more than the SQLite C code it calls, so read the shares as
an upper bound on the Python overhead; absolute rates here are lower than in run.py.
Stats files are kept in bench/results/profile-*.prof for snakeviz / pstats.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time
from pathlib import Path

import conveyor_bench
from common import BENCH_DIR, note

RESULTS = BENCH_DIR / "results"


def report(stats_file: Path, title: str, per: int, top: int) -> None:
    stats = pstats.Stats(str(stats_file))
    total = stats.total_tt  # type: ignore[attr-defined]
    print(f"\n=== {title}: {total:.2f} s profiled, {1e6 * total / per:.1f} µs per job ===")
    for sort in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(str(stats_file), stream=out).strip_dirs().sort_stats(sort) \
            .print_stats(top)
        body = out.getvalue()
        print(f"--- by {sort} ---")
        print(body[body.index("   ncalls"):].rstrip())


def profile_enqueue(n: int, top: int) -> None:
    with conveyor_bench.fresh_app() as (bench, _):
        for _ in range(10):
            bench.noop.enqueue()
        profiler = cProfile.Profile()
        start = time.perf_counter()
        profiler.enable()
        for _ in range(n):
            bench.noop.enqueue()
        profiler.disable()
        note(f"sync enqueue under cProfile: {n / (time.perf_counter() - start):,.0f}/s")
        path = RESULTS / "profile-enqueue-sync.prof"
        profiler.dump_stats(path)
    report(path, "sync enqueue (task.enqueue)", n, top)


def profile_bulk(n: int, top: int) -> None:
    with conveyor_bench.fresh_app() as (bench, _):
        bench.noop.enqueue()
        profiler = cProfile.Profile()
        profiler.enable()
        bench.app.enqueue_many([bench.noop.prepare() for _ in range(n)])
        profiler.disable()
        path = RESULTS / "profile-enqueue-bulk.prof"
        profiler.dump_stats(path)
    report(path, "bulk enqueue (prepare + enqueue_many)", n, top)


def profile_worker(n: int, top: int) -> None:
    settings = conveyor_bench.Settings(jobs=n, profile_dir=RESULTS)
    for prefix, task in (("async", "noop"), ("thread", "noop_sync")):
        result = conveyor_bench.throughput(settings, task)
        note(f"worker ({prefix}) under cProfile: {result['per_s']:,.0f}/s")
        path = RESULTS / f"worker-{task}.prof"
        final = RESULTS / f"profile-worker-{prefix}.prof"
        path.replace(final)
        report(final, f"worker process, {prefix} no-op jobs (main thread)", n, top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--single", type=int, default=5_000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--only", choices=["enqueue", "bulk", "worker"], default=None)
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    if args.only in (None, "enqueue"):
        profile_enqueue(args.single, args.top)
    if args.only in (None, "bulk"):
        profile_bulk(args.jobs, args.top)
    if args.only in (None, "worker"):
        profile_worker(args.jobs, args.top)


if __name__ == "__main__":
    main()
