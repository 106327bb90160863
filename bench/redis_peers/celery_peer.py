"""Celery with its Redis broker (kombu), as the benchmark drives every system (session.py).

No result backend (Celery's default: nothing is stored for a task's return value).
Worker: ``celery -A celery_peer worker`` in ONE process: the solo pool (tasks run in the
consumer's own thread) or the threads pool, with ``--without-gossip --without-mingle
--without-heartbeat`` (Celery's documented way to cut broker chatter) and WARNING logs.
The prefork and gevent/eventlet pools are left out: prefork runs tasks in child processes
(more than one process), gevent/eventlet need extra packages and monkey-patching.
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import probe
from celery import Celery

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
app = Celery("bench", broker=URL)


@app.task(name="noop")
def noop() -> None:
    probe.ran()


@app.task(name="stamp")
def stamp(i: int) -> None:
    probe.stamp(i)


COMMON = ["--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING"]
VARIANTS = {
    "solo": ["-P", "solo"],
    "solo-prefetch64": ["-P", "solo", "--prefetch-multiplier", "64"],
    "threads8": ["-P", "threads", "-c", "8"],
    "threads8-prefetch16": ["-P", "threads", "-c", "8", "--prefetch-multiplier", "16"],
}


class Peer:
    NO_BULK = "no bulk API: group(...).apply_async() publishes one message per task"

    def info(self) -> dict[str, Any]:
        return {
            "versions": {d: version(d) for d in ("celery", "kombu", "redis", "hiredis")},
            "api": "sync (task.delay())",
            "bulk": None,
            "variants": {name: "celery worker " + " ".join(flags + COMMON)
                         for name, flags in VARIANTS.items()},
            "delivery": "acks early (default acks_late=False): a message is acked before the "
                        "task runs; no result stored",
        }

    def worker(self, variant: str) -> tuple[list[str], dict[str, str]]:
        celery = str(Path(sys.executable).parent / "celery")
        return [celery, "-A", "celery_peer", "worker", "-Q", "celery",
                *VARIANTS[variant], *COMMON], {}

    def enqueue(self) -> None:
        noop.delay()

    def preload(self, n: int) -> None:
        with app.producer_or_acquire() as producer:
            for _ in range(n):
                noop.apply_async(producer=producer)

    def remaining(self) -> int:
        with app.connection_for_write() as conn:
            client = conn.default_channel.client
            return int(client.llen("celery")) + int(client.hlen("unacked"))

    def stamp(self, i: int) -> None:
        stamp.delay(i)
