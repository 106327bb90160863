"""Schedules: how late a tick's job starts when 1,000 schedules are due at the same
second, and what an idle scheduler costs, on SQLite and Redis.

    .venv/bin/python bench/schedules.py                       # about three minutes
    .venv/bin/python bench/schedules.py --only redis --schedules 200 --idle 10

Latency: one `conveyor worker -c 200` on a fresh store (its keeper leads and runs the
scheduler), then --schedules schedules of ``every=10s`` (all due on the same whole 10 s);
over --rounds ticks of each, from the first tick after they all exist, every job's delays
are read back from the store:
tick -> enqueued (the scheduler: wake-up, read, plan, one atomic firing per schedule)
and tick -> started (plus the worker's claim), as p50 / p99 / max over all jobs.

Idle cost: CPU seconds per hour of a worker whose scheduler has one hourly schedule,
beside the same worker without the schedules plugin, each measured over --idle seconds;
the difference is the scheduler's own cost (the keeper re-reads the schedules about once
a second while it leads).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from conveyor import Conveyor
from conveyor.schedules import enable

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
from common import Child, cpu_seconds, percentile, wait_until  # noqa: E402

app = Conveyor()  # CONVEYOR_URL: the worker imports this module as bench_schedules:app
plain = Conveyor()  # the same task, without the schedules plugin (the idle baseline)
enable(app)  # the schedules are created at runtime: the worker's app needs the plugin


@app.task
async def tick() -> None:
    return None


@plain.task(name="tick")
async def plain_tick() -> None:
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_redis(folder: Path) -> tuple[Child, str]:
    port = free_port()
    server = Child(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir",
                    str(folder), "--save", "", "--appendonly", "yes", "--appendfsync",
                    "everysec", "--maxmemory-policy", "noeviction"])
    wait_until(lambda: _answers(port), 10, what="redis-server")
    return server, f"redis://127.0.0.1:{port}/0"


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def worker(url: str, folder: Path, attr: str = "app") -> Child:
    env = {"CONVEYOR_URL": url, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(BENCH)])}
    return Child([sys.executable, "-m", "conveyor", "worker", f"schedules:{attr}", "-c",
                  "200", "--log-level", "warning"], env=env, cwd=BENCH,
                 log_path=folder / f"worker-{attr}.log")


def latency(url: str, folder: Path, count: int, rounds: int) -> dict[str, float]:
    app.use(url)
    with worker(url, folder) as w:
        time.sleep(4)  # the worker starts and its keeper takes the lead
        for i in range(count):
            app.schedules.create(f"s{i:04d}", "tick", every="10s", overlap="allow")
        # ticks from the next whole 10 s on: every schedule exists and the scheduler leads
        first = (app.run_sync(app.backend.now) // 10_000 + 1) * 10_000
        wait_until(lambda: len(_measured(first)) >= count * rounds, 15 * rounds + 30, 0.5,
                   "the ticks' jobs to start")
        w.check_alive()
    jobs = _measured(first)
    enqueued = [job.created_at - _tick(job) for job in jobs]
    started = [job.started_at - _tick(job) for job in jobs if job.started_at is not None]
    app.close()
    return {"jobs": len(jobs), "enqueued_p50": percentile(enqueued, 50),
            "enqueued_p99": percentile(enqueued, 99), "started_p50": percentile(started, 50),
            "started_p99": percentile(started, 99), "started_max": max(started)}


def _tick(job: Any) -> int:
    return int((job.key or "0").rsplit(":", 1)[1])


def _measured(first: int) -> list[Any]:
    """The started jobs of the ticks from `first` on."""
    page = app.run_sync(app.backend.list_jobs, _all(), 1000, None)
    jobs = list(page.jobs)
    while page.next_cursor:
        page = app.run_sync(app.backend.list_jobs, _all(), 1000, page.next_cursor)
        jobs += page.jobs
    return [j for j in jobs if _tick(j) >= first and j.started_at is not None]


def _all() -> object:
    from conveyor.backends.base import JobFilter

    return JobFilter()


def idle_cpu_per_hour(url: str, folder: Path, attr: str, seconds: float) -> float:
    if attr == "app":
        app.use(url)
        app.schedules.create("hourly", "tick", cron="@hourly")
        app.close()
    with worker(url, folder, attr) as w:
        time.sleep(5)  # start-up, first beats, leadership
        w.check_alive()
        before, start = cpu_seconds(w.pid), time.monotonic()
        time.sleep(seconds)
        used, elapsed = cpu_seconds(w.pid) - before, time.monotonic() - start
    return used / elapsed * 3600


def store(kind: str, folder: Path, servers: list[Child]) -> str:
    if kind == "sqlite":
        path = folder / f"s{len(list(folder.iterdir()))}.db"
        return f"sqlite:///{path}"
    server, url = start_redis(folder / f"redis{len(servers)}")
    servers.append(server)
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="sqlite,redis")
    parser.add_argument("--schedules", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle", type=float, default=30.0)
    args = parser.parse_args()
    kinds = [k for k in args.only.split(",") if k != "redis" or shutil.which("redis-server")]
    for kind in kinds:
        folder = Path(tempfile.mkdtemp(prefix=f"bench-schedules-{kind}-"))
        servers: list[Child] = []
        for name in ("redis0", "redis1", "redis2"):
            (folder / name).mkdir()
        try:
            found = latency(store(kind, folder, servers), folder, args.schedules, args.rounds)
            print(f"{kind}: {args.schedules} schedules due together, {found['jobs']} jobs: "
                  f"tick->enqueued p50 {found['enqueued_p50']:.0f} ms p99 "
                  f"{found['enqueued_p99']:.0f} ms; tick->started p50 "
                  f"{found['started_p50']:.0f} ms p99 {found['started_p99']:.0f} ms "
                  f"max {found['started_max']:.0f} ms", flush=True)
            with_scheduler = idle_cpu_per_hour(store(kind, folder, servers), folder, "app",
                                               args.idle)
            without = idle_cpu_per_hour(store(kind, folder, servers), folder, "plain",
                                        args.idle)
            print(f"{kind}: idle worker CPU per hour: {with_scheduler:.1f} s with the "
                  f"scheduler (1 hourly schedule), {without:.1f} s without; scheduler "
                  f"{with_scheduler - without:.1f} s/h", flush=True)
        finally:
            for server in servers:
                server.stop()
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
