"""Flows: what dependencies cost, on SQLite and Redis, in one run.

    .venv/bin/python bench/flows.py [--jobs 10000] [--graph 1000] [--rounds 3]
                                    [--only sqlite|redis] [--plain-only]

Per backend (a fresh SQLite file; a throw-away redis-server, no persistence):

- **independent**: N no-op jobs enqueued in bulk, then drained by one in-process worker
  (concurrency 50): jobs/s, and CPU µs per job (this process, which on SQLite includes
  the database's work, plus redis-server's own): on a busy machine the CPU figure moves
  far less than the rate. This is the path of users who never use flows, so it is
  also the A/B figure: run it with PYTHONPATH at two checkouts, back to back
  (``--plain-only`` runs nothing else).
- **chain**: a chain of N no-op jobs (each waits for the previous one), enqueued as one
  flow, then drained the same way: jobs/s. A chain runs one job at a time, so this is
  the latency of one link (settle, release, claim, run), not the edge's cost.
- **100 chains**: 100 chains of N/100 jobs in one flow, drained the same way, so the
  worker is as busy as with independent jobs: the cost of an edge at settle is
  1/rate(100 chains) - 1/rate(independent), in µs per job.
- **at the contract**: N/2 no-op jobs, then 100 chains of N/200, through a loop of
  `fetch(limit 50)` that settles its previous batch in the same call (no worker): CPU µs
  per job (this process, plus redis-server's time in the scripts). The difference is
  what an edge costs at settle, without the worker's scheduling in the way; the first
  figure is also the A/B figure for users without flows.
- **graph enqueue**: a graph of G jobs (each of the jobs after the first 10 waits for two
  earlier ones) stored with one `enqueue_flow`: ms, and on Redis the commands it sent.

Rounds alternate the workloads; the medians are printed as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conveyor import Conveyor
from conveyor.worker import Worker


def make_app(url: str) -> tuple[Conveyor, Any]:
    app = Conveyor(url)

    @app.task
    async def noop() -> None:
        return None

    return app, noop


async def drain(app: Conveyor) -> tuple[float, float]:
    """Wall and CPU seconds (this process: the worker and, on SQLite, the database)."""
    worker = Worker(app, ["default"], concurrency=50, poll_interval=0.01)
    start, cpu = time.perf_counter(), time.process_time()
    await worker.run(until_idle=True)
    return time.perf_counter() - start, time.process_time() - cpu


def independent(url: str, jobs: int, server_cpu: Callable[[], float]) -> tuple[float, float]:
    """jobs/s, and CPU µs per job (this process plus redis-server's)."""
    app, noop = make_app(url)
    app.enqueue_many([noop.prepare() for _ in range(jobs)])
    before = server_cpu()
    seconds, cpu = asyncio.run(drain(app))
    cpu += server_cpu() - before
    app.close()
    return jobs / seconds, cpu / jobs * 1e6


def chained(url: str, jobs: int) -> float:
    from conveyor import chain  # not in a checkout from before flows (A/B: --plain-only)

    app, noop = make_app(url)
    chain(*(noop.prepare() for _ in range(jobs))).enqueue(app)
    seconds, _ = asyncio.run(drain(app))
    app.close()
    return jobs / seconds


def parallel_chains(url: str, jobs: int, width: int = 100) -> float:
    """`width` chains of jobs/width each, enqueued as one flow: edges at full concurrency."""
    app, noop = make_app(url)
    flow = app.new_flow()
    for _ in range(width):
        previous = None
        for _ in range(jobs // width):
            previous = flow.add(noop.prepare(), after=[previous] if previous else [])
    flow.enqueue()
    seconds, _ = asyncio.run(drain(app))
    app.close()
    return jobs // width * width / seconds


async def contract_loop(url: str, jobs: int, chains: bool,
                        script_us: Callable[[], int]) -> float:
    """At the backend contract, one process: `fetch(limit 50)` settling its previous
    batch in the same call, until done. CPU µs per job: this process's (on SQLite all of
    it) plus, on Redis, the time redis-server spent in the scripts."""
    from conveyor.backends import backend_for
    from conveyor.backends.base import NewJob, Outcome, Settlement

    backend = backend_for(url)
    await backend.open()
    width = 100
    news = [NewJob(id=uuid.uuid4().hex, queue="q", task="t", args_json="[]",
                   kwargs_json="{}", flow_id="f" if chains else None) for _ in range(jobs)]
    if chains:  # 100 chains side by side
        news = [dataclasses.replace(n, parents=((news[i - width].id, "fail"),))
                if i >= width else n for i, n in enumerate(news)]
        await backend.enqueue_flow(news)
    else:
        for i in range(0, jobs, 500):
            await backend.enqueue(news[i:i + 500])
    settle: list[Settlement] = []
    before, cpu = script_us(), time.process_time()
    while True:
        fetched = await backend.fetch(["q"], 50, "bench", 30_000, settle)
        if not fetched.claims and not settle:
            break
        settle = [Settlement(c.job.id, c.token, Outcome.COMPLETED, result_json="null")
                  for c in fetched.claims]
    used = (time.process_time() - cpu) * 1e6 + (script_us() - before)
    await backend.close()
    return used / jobs


def graph_enqueue(url: str, size: int, commands: Callable[[], int]) -> dict[str, float]:
    app, noop = make_app(url)
    rng = random.Random(7)
    flow = app.new_flow()
    added = [flow.add(noop.prepare()) for _ in range(10)]
    for _ in range(size - 10):
        added.append(flow.add(noop.prepare(), after=rng.sample(added, 2)))
    app.get_flow("warm-up")  # connect before timing
    before = commands()
    start = time.perf_counter()
    flow.enqueue()
    ms = (time.perf_counter() - start) * 1000
    sent = commands() - before
    app.close()
    return {"ms": ms, "backend_commands": sent}


class RedisServer:
    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.folder = tempfile.mkdtemp(prefix="bench-flows-redis-")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.folder], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise SystemExit("redis-server did not start")

    def url(self, n: int) -> str:
        return f"redis://127.0.0.1:{self.port}/0?prefix=b{n}"

    def cpu(self) -> float:
        out = subprocess.run(["redis-cli", "-p", str(self.port), "INFO", "cpu"],
                             capture_output=True, text=True, check=True).stdout
        fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        return float(fields["used_cpu_user"]) + float(fields["used_cpu_sys"])

    def script_us(self) -> int:
        out = subprocess.run(["redis-cli", "-p", str(self.port), "INFO", "commandstats"],
                             capture_output=True, text=True, check=True).stdout
        return sum(int(line.split("usec=")[1].split(",")[0]) for line in out.splitlines()
                   if line.startswith(("cmdstat_evalsha:", "cmdstat_eval:")))

    def commands(self) -> int:
        out = subprocess.run(["redis-cli", "-p", str(self.port), "INFO", "stats"],
                             capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("total_commands_processed:"):
                return int(line.split(":")[1])
        return 0

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def run_backend(name: str, args: argparse.Namespace) -> dict[str, Any]:
    server = RedisServer() if name == "redis" else None
    folder = tempfile.mkdtemp(prefix="bench-flows-")
    urls = iter(range(10_000))

    def url() -> str:
        n = next(urls)
        return server.url(n) if server else f"sqlite:///{folder}/b{n}.db"

    out: dict[str, list[float]] = {"independent_jobs_per_s": [], "independent_cpu_us_per_job": []}
    try:
        for _ in range(args.rounds):
            rate, cpu = independent(url(), args.jobs, server.cpu if server else lambda: 0.0)
            out["independent_jobs_per_s"].append(rate)
            out["independent_cpu_us_per_job"].append(cpu)
            script_us = server.script_us if server else lambda: 0
            out.setdefault("contract_independent_us_per_job", []).append(
                asyncio.run(contract_loop(url(), args.jobs // 2, False, script_us)))
            if args.plain_only:
                continue
            out.setdefault("contract_chains_us_per_job", []).append(
                asyncio.run(contract_loop(url(), args.jobs // 2, True, script_us)))
            out.setdefault("chain_jobs_per_s", []).append(chained(url(), args.jobs))
            out.setdefault("chains_x100_jobs_per_s", []).append(
                parallel_chains(url(), args.jobs))
            g = graph_enqueue(url(), args.graph, server.commands if server else lambda: 0)
            out.setdefault("graph_enqueue_ms", []).append(g["ms"])
            out.setdefault("graph_enqueue_commands", []).append(g["backend_commands"])
    finally:
        if server:
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    result: dict[str, Any] = {k: round(statistics.median(v), 1) for k, v in out.items()}
    if "chain_jobs_per_s" in result:
        result["chain_latency_per_link_ms"] = round(1000 / result["chain_jobs_per_s"], 2)
        result["worker_cost_per_edge_us"] = round(
            (1 / result["chains_x100_jobs_per_s"] - 1 / result["independent_jobs_per_s"])
            * 1e6, 1)
        result["contract_cost_per_edge_us"] = round(
            result["contract_chains_us_per_job"] - result["contract_independent_us_per_job"], 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--graph", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=["sqlite", "redis"], default=None)
    parser.add_argument("--plain-only", action="store_true",
                        help="only the independent no-op jobs (the A/B figure)")
    args = parser.parse_args()
    names = [args.only] if args.only else ["sqlite", "redis"]
    report = {"jobs": args.jobs, "graph": args.graph, "rounds": args.rounds,
              "results": {n: run_backend(n, args) for n in names if _supported(n)}}
    json.dump(report, sys.stdout, indent=2)
    print()


def _supported(name: str) -> bool:
    return name == "sqlite" or shutil.which("redis-server") is not None


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
