"""Dramatiq with its RedisBroker, as the benchmark drives every system (session.py).

Default middleware (retries, time limit, age limit, callbacks, pipelines...), no results
middleware. Worker: ``dramatiq dramatiq_peer --processes 1 --threads T``: one worker
process (plus dramatiq's supervising parent) running T worker threads.
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import dramatiq
import probe
from dramatiq.brokers.redis import RedisBroker

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
broker = RedisBroker(url=URL)
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name="default")
def noop() -> None:
    probe.ran()


@dramatiq.actor(queue_name="default")
def stamp(i: int) -> None:
    probe.stamp(i)


VARIANTS = {"threads8": 8, "threads16": 16, "threads32": 32}


class Peer:
    NO_BULK = "no bulk API: group(...).run() enqueues one message at a time"

    def info(self) -> dict[str, Any]:
        return {
            "versions": {d: version(d) for d in ("dramatiq", "redis", "hiredis")},
            "api": "sync (actor.send())",
            "bulk": None,
            "variants": {name: f"dramatiq dramatiq_peer --processes 1 --threads {t}"
                         for name, t in VARIANTS.items()},
            "delivery": "at-least-once: message acked after the actor runs; unacked "
                        "messages of dead workers requeued by heartbeat maintenance",
        }

    def worker(self, variant: str) -> tuple[list[str], dict[str, str]]:
        cli = str(Path(sys.executable).parent / "dramatiq")
        return [cli, "dramatiq_peer", "--processes", "1", "--threads",
                str(VARIANTS[variant])], {}

    def enqueue(self) -> None:
        noop.send()

    def preload(self, n: int) -> None:
        for _ in range(n):
            noop.send()

    def remaining(self) -> int:
        return int(broker.client.hlen("dramatiq:default.msgs"))

    def stamp(self, i: int) -> None:
        stamp.send(i)
