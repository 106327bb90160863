"""Soak: the highest rate one worker sustains, for N minutes, on SQLite and on Redis; is
what the store keeps bounded, and does throughput hold? Not a CI test.

    .venv/bin/python bench/soak.py                      # 10 minutes each backend
    .venv/bin/python bench/soak.py --minutes 3 --only sqlite

A producer (this process) keeps a backlog of about `--backlog` waiting jobs in front of one
`conveyor worker` process (`-c 100`), so the worker always has work: the rate is the
highest it sustains. The app (bench/soak_app.py) keeps completed jobs 60 s or 10,000,
events 60 s, tombstones 60 s or 10,000, so within a few minutes of steady load the store
should stop growing. Every `--sample` seconds one line: jobs/s over the interval, file
sizes (SQLite: database and WAL; Redis: used_memory), and rows or keys per kind. The last
lines compare the second half with the first.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path[:0] = [str(BENCH_DIR), str(ROOT)]

from common import Child  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

import redis  # noqa: E402
from conveyor import JobState  # noqa: E402


class Producer(threading.Thread):
    """Keeps about `backlog` jobs waiting; counts what it enqueued."""

    def __init__(self, url: str, backlog: int) -> None:
        super().__init__(daemon=True, name="producer")
        os.environ["CONVEYOR_URL"] = url
        from soak_app import app, noop

        app.use(url)
        self.app, self.noop, self.backlog = app, noop, backlog
        self.enqueued = 0
        self.stop = threading.Event()

    def waiting(self) -> tuple[int, int]:
        """(waiting, active) of the default queue."""
        for q in self.app.queues():
            if q.name == "default":
                return q.counts[JobState.WAITING], q.counts[JobState.ACTIVE]
        return 0, 0

    def run(self) -> None:
        while not self.stop.is_set():
            waiting, _ = self.waiting()
            if waiting >= self.backlog:
                self.stop.wait(0.02)
                continue
            batch = [self.noop.prepare(n) for n in range(min(500, self.backlog - waiting))]
            self.app.enqueue_many(batch)
            self.enqueued += len(batch)


def sqlite_sizes(path: Path) -> dict[str, Any]:
    wal = Path(f"{path}-wal")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as db:
        states = dict(db.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())
        events = db.execute("SELECT count(*) FROM events").fetchone()[0]
        tombs = db.execute("SELECT count(*) FROM tombstones").fetchone()[0]
    return {"db_MB": path.stat().st_size / 1e6,
            "wal_MB": wal.stat().st_size / 1e6 if wal.exists() else 0.0,
            "completed": states.get("completed", 0), "events": events, "tombstones": tombs}


def redis_sizes(client: redis.Redis, prefix: str) -> dict[str, Any]:
    q = f"{prefix}:{{q:default}}:"
    memory = client.info("memory")["used_memory"]
    return {"used_MB": memory / 1e6, "keys": client.dbsize(),
            "completed": client.zcard(q + "completed"), "events": client.xlen(q + "events"),
            "tombstones": client.zcard(q + "tombstones")}


def soak(kind: str, minutes: float, every: float, backlog: int, folder: Path) -> None:
    server = None
    if kind == "sqlite":
        db = folder / "soak.db"
        url = f"sqlite:///{db}"
    else:
        server = RedisServer(folder / "redis", appendonly=True, appendfsync="everysec").start()
        url = f"{server.url}?prefix=soak"
        client = redis.Redis(port=server.port, decode_responses=True)
    producer = Producer(url, backlog)
    env = {"CONVEYOR_URL": url, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{BENCH_DIR}"}
    worker = Child([sys.executable, "-m", "conveyor", "worker", "soak_app:app", "-q", "default",
                    "-c", "100"], env=env, log_path=folder / f"{kind}-worker.log", cwd=BENCH_DIR)
    rates: list[float] = []
    try:
        producer.start()
        start = last_t = time.monotonic()
        last_done = 0
        print(f"\n{kind}: {minutes:g} min, one worker (-c 100), backlog ~{backlog}")
        while time.monotonic() - start < minutes * 60:
            time.sleep(every)
            worker.check_alive()
            waiting, active = producer.waiting()
            done = producer.enqueued - waiting - active
            now = time.monotonic()
            rate = (done - last_done) / (now - last_t)
            rates.append(rate)
            last_done, last_t = done, now
            sizes = sqlite_sizes(db) if kind == "sqlite" else redis_sizes(client, "soak")
            shown = "  ".join(f"{k} {v:,.1f}" if isinstance(v, float) else f"{k} {v:,}"
                              for k, v in sizes.items())
            print(f"  {now - start:5.0f}s  {rate:7,.0f} jobs/s  done {done:,}  {shown}",
                  flush=True)
    finally:
        producer.stop.set()
        producer.join(10)
        worker.stop()
        producer.app.close()
        if server is not None:
            server.stop()
    half = len(rates) // 2
    if half:
        first, second = statistics.median(rates[:half]), statistics.median(rates[half:])
        print(f"  median jobs/s: first half {first:,.0f}, second half {second:,.0f} "
              f"({(second / first - 1) * 100:+.0f}%)" if first else "  no throughput")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--sample", type=float, default=30, help="seconds between samples")
    parser.add_argument("--backlog", type=int, default=2000)
    parser.add_argument("--only", choices=["sqlite", "redis"])
    opts = parser.parse_args()
    for kind in ("sqlite", "redis"):
        if opts.only and kind != opts.only:
            continue
        with tempfile.TemporaryDirectory(prefix=f"soak-{kind}-") as tmp:
            soak(kind, opts.minutes, opts.sample, opts.backlog, Path(tmp))


if __name__ == "__main__":
    main()
