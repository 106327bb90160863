"""RQ, as the benchmark drives every system (session.py).

RQ runs one job at a time per worker process: it has no concurrency inside a process.
Worker: ``rq worker default -q -w rq.worker.SimpleWorker``: the job runs in the worker
process itself. RQ's default ``Worker`` forks a new work horse process per job, which can
only be slower for no-op jobs (and runs each job in another process, which the probe's
per-process count cannot follow), so it is not tried. Results are kept for RQ's default
result_ttl (500 s), job hashes as RQ keeps them.
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import probe
from rq import Queue

from redis import Redis

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def noop() -> None:
    probe.ran()


def stamp(i: int) -> None:
    probe.stamp(i)


VARIANTS = {"simple": ["-w", "rq.worker.SimpleWorker"]}


class Peer:
    NO_BULK = ""

    def __init__(self) -> None:
        self.queue = Queue("default", connection=Redis.from_url(URL))

    def info(self) -> dict[str, Any]:
        return {
            "versions": {d: version(d) for d in ("rq", "redis", "hiredis")},
            "api": "sync (queue.enqueue(fn))",
            "bulk": "queue.enqueue_many([Queue.prepare_data(fn) ...]): one pipeline",
            "variants": {name: "rq worker default -q " + " ".join(flags)
                         for name, flags in VARIANTS.items()},
            "delivery": "job in a started registry while it runs; abandoned jobs are "
                        "failed by maintenance, not retried (rq#2015)",
        }

    def worker(self, variant: str) -> tuple[list[str], dict[str, str]]:
        rq = str(Path(sys.executable).parent / "rq")
        return [rq, "worker", "default", "-u", URL, "-q", *VARIANTS[variant]], {}

    def enqueue(self) -> None:
        self.queue.enqueue(noop)

    def bulk(self, n: int) -> None:
        self.queue.enqueue_many([Queue.prepare_data(noop) for _ in range(n)])

    def preload(self, n: int) -> None:
        for start in range(0, n, 5_000):
            self.bulk(min(5_000, n - start))

    def remaining(self) -> int:
        return self.queue.count + self.queue.started_job_registry.count

    def stamp(self, i: int) -> None:
        self.queue.enqueue(stamp, i)
