"""conveyor on Redis side by side with what a Python user would pick instead.

    .venv/bin/python bench/redis_run.py [--quick] [--only conveyor,rq,...] [--jobs N]

Starts a throw-away ``redis-server`` (free loopback port, temp dir, no persistence) and
measures, one system after another on that server and this machine, in the same run:
conveyor, Celery, RQ, Dramatiq, arq, SAQ, taskiq (+taskiq-redis), Huey, BullMQ for Python
and, as a reference point, BullMQ on Node. Each peer runs from its own environment under
``bench/.venvs/`` (made on first use, see peer_envs.py), through the same small driver
(``redis_peers/session.py``; ``bullmq-node/session.mjs`` for Node), and its tasks call the
same probe (``redis_peers/probe.py``), so every system is timed the same way:

- enqueue one at a time (sync and/or async API, whichever the system has) and bulk (the
  system's own bulk API; "n/a" when it has none);
- throughput: N no-op jobs enqueued beforehand, then ONE worker process; from the first
  job's start to the N-th job's end, as the jobs themselves record it (worker start-up is
  not counted). The worker settings are the peer's documented throughput knobs; where there
  are several candidates, each is tried on a shorter run and the fastest is used;
- pickup latency on an idle worker: jobs enqueued one at a time, ``time.time()`` at the job's
  start minus ``time.time()`` just before the enqueue call;
- worker RSS after the throughput run, and its CPU when idle;
- Redis commands and Redis CPU (``redis-server``'s own, from /proc) per job, for enqueue
  and for processing, from deltas taken around each phase.

Prints the figures, a table of ratios conveyor / peer (the machine is shared and noisy:
the ratios come from one run), the settings and versions, and writes everything to
``bench/results/redis-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import selectors
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from common import (
    BENCH_DIR,
    Child,
    _die_with_parent,
    cpu_seconds,
    exit_on_sigterm,
    note,
    percentile,
    rss_mib,
)
from peer_envs import NODE_DIR, PEER_ENVS, PEERS_DIR, ensure
from rich.console import Console
from rich.table import Table

import redis

RESULTS = BENCH_DIR / "results"
SYSTEMS = ("conveyor", "celery", "rq", "dramatiq", "arq", "saq", "taskiq", "huey", "bullmq",
           "bullmq-node")
LABELS = {"conveyor": "conveyor", "celery": "Celery", "rq": "RQ", "dramatiq": "Dramatiq",
          "arq": "arq", "saq": "SAQ", "taskiq": "taskiq", "huey": "Huey",
          "bullmq": "BullMQ-py", "bullmq-node": "BullMQ-node"}
PYTHON_PEERS = ("celery", "rq", "dramatiq", "arq", "saq", "taskiq", "huey", "bullmq")


@dataclass(frozen=True)
class Plan:
    jobs: int  # throughput run and bulk enqueue size
    single: int  # one-at-a-time enqueues per flavor
    samples: int  # pickup latency samples
    pause: float  # seconds between pickup samples
    idle_seconds: float  # idle CPU measured over this long
    sweep_jobs: int  # jobs per candidate setting when choosing a peer's worker settings
    sweep: bool

    @classmethod
    def make(cls, quick: bool, jobs: int | None, sweep: bool) -> Plan:
        if quick:
            return cls(jobs or 2_000, 500, 50, 0.05, 2.0, min(jobs or 1_000, 1_000), sweep)
        return cls(jobs or 20_000, 2_000, 200, 0.05, 5.0, min(jobs or 5_000, 5_000), sweep)

    def throughput_timeout(self, jobs: int) -> float:
        return max(60.0, jobs / 50)  # anything slower than 50 jobs/s is reported as a timeout


class PhaseError(RuntimeError):
    pass


# -- the Redis server ---------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    """A private redis-server: no RDB, no AOF, in a temp dir; killed with us."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.child = Child([binary, "--port", str(self.port), "--bind", "127.0.0.1",
                            "--save", "", "--appendonly", "no", "--dir", str(folder),
                            "--daemonize", "no", "--maxmemory-policy", "noeviction"],
                           log_path=folder / "redis.log")
        self.client = redis.Redis(port=self.port, decode_responses=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client.ping()
                break
            except redis.ConnectionError:
                self.child.check_alive()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.version = self.client.info("server")["redis_version"]

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
        self.child.stop()

    def flush(self) -> None:
        self.client.flushall()

    def snapshot(self) -> dict[str, Any]:
        stats = self.client.info("commandstats")
        return {"calls": {name.removeprefix("cmdstat_"): int(v["calls"])
                          for name, v in stats.items()},
                "cpu": cpu_seconds(self.child.pid)}

    @staticmethod
    def delta(before: dict[str, Any], after: dict[str, Any], jobs: int) -> dict[str, Any]:
        """Commands (those run inside Lua scripts included, as Redis counts them) and
        redis-server CPU between two snapshots, per job. Our own INFO calls are left out."""
        calls = {name: n - before["calls"].get(name, 0) for name, n in after["calls"].items()
                 if name != "info"}
        calls = {name: n for name, n in calls.items() if n > 0}
        scripts = sum(n for name, n in calls.items()
                      if name.startswith(("eval", "fcall")))
        total = sum(calls.values())
        cpu = after["cpu"] - before["cpu"]
        top = sorted(calls.items(), key=lambda item: -item[1])[:12]
        return {"commands_per_job": total / jobs, "scripts_per_job": scripts / jobs,
                "redis_cpu_us_per_job": cpu * 1e6 / jobs, "redis_cpu_s": cpu,
                "top_commands_per_job": {name: n / jobs for name, n in top}}


# -- a system's producer session ------------------------------------------------------------
class Session:
    """One producer process of a system (redis_peers/session.py or bullmq-node/session.mjs),
    asked one JSON request per line. Killed (whole process group) on exit."""

    def __init__(self, system: str, env: dict[str, str], log: Path) -> None:
        self.log = log
        if system == "bullmq-node":
            argv, cwd = [shutil.which("node") or "node", "session.mjs"], NODE_DIR
        else:
            argv = [str(PEER_ENVS[system].python), "session.py", system]
            cwd = PEERS_DIR
        self._log = open(log, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(argv, cwd=cwd, env={**os.environ, **env},
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log, start_new_session=True,
                                     preexec_fn=_die_with_parent)
        self._selector = selectors.DefaultSelector()
        assert self.proc.stdout is not None
        self._selector.register(self.proc.stdout, selectors.EVENT_READ)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def call(self, op: str, timeout: float = 120.0, **args: Any) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((json.dumps({"op": op, **args}) + "\n").encode())
        self.proc.stdin.flush()
        if not self._selector.select(timeout):
            raise PhaseError(f"{op}: no answer in {timeout:g} s")
        line = self.proc.stdout.readline()
        if not line:
            raise PhaseError(f"{op}: the session exited ({self.proc.poll()}); "
                             f"{tail(self.log)}")
        reply = json.loads(line)
        if "error" in reply:
            raise PhaseError(f"{op}: {reply['error']}")
        return reply["ok"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(Exception):
                self.call("close", timeout=10)
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, 9)
                self.proc.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, 9)  # anything the session left behind
        self._selector.close()
        self._log.close()


def tail(path: Path, chars: int = 600) -> str:
    try:
        return path.read_text(errors="replace")[-chars:].strip()
    except OSError:
        return ""


# -- processes of a worker ------------------------------------------------------------------
def tree(session_id: int) -> list[int]:
    """Pids of every process in the session (the worker and whatever it forked)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            text = (entry / "stat").read_text()
            if int(text[text.rindex(")") + 2:].split()[3]) == session_id:
                pids.append(int(entry.name))
    return pids


def tree_rss(session_id: int) -> tuple[float, int]:
    pids = tree(session_id)
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError, RuntimeError):
            total += rss_mib(pid)
    return total, len(pids)


def tree_idle_cpu(session_id: int, seconds: float) -> float:
    """CPU of the worker's processes over `seconds`, % of one core: per process, so one
    that exits or starts meanwhile cannot make the sum go negative."""
    def used() -> dict[int, float]:
        out = {}
        for pid in tree(session_id):
            with contextlib.suppress(OSError, ValueError):
                out[pid] = cpu_seconds(pid)
        return out

    before, start = used(), time.monotonic()
    time.sleep(seconds)
    after = used()
    spent = sum(max(0.0, cpu - before.get(pid, 0.0)) for pid, cpu in after.items())
    return 100.0 * spent / (time.monotonic() - start)


# -- measuring one system -------------------------------------------------------------------
class Bench:
    def __init__(self, system: str, plan: Plan, server: RedisServer, logs: Path) -> None:
        self.system, self.plan, self.server, self.logs = system, plan, server, logs
        self.variant_env: dict[str, str] = {}
        self.variant = ""
        self.out: dict[str, Any] = {"errors": {}}

    @property
    def base_env(self) -> dict[str, str]:
        return {"BENCH_REDIS_URL": self.server.url,
                "PYTHONPATH": f"{PEERS_DIR}{os.pathsep}{BENCH_DIR}",
                "PYTHONUNBUFFERED": "1", **self.variant_env}

    @contextlib.contextmanager
    def session(self, phase: str) -> Iterator[Session]:
        with Session(self.system, self.base_env, self.logs / f"{self.system}-{phase}.log") as s:
            yield s

    def worker(self, session: Session, phase: str, env: dict[str, str]) -> Child:
        spec = session.call("worker", variant=self.variant)
        cwd = NODE_DIR if self.system == "bullmq-node" else PEERS_DIR
        return Child(spec["argv"], env={**self.base_env, **spec["env"], **env},
                     log_path=self.logs / f"{self.system}-{phase}-worker.log", cwd=cwd)

    def attempt(self, phase: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as exc:
            message = str(exc).strip().splitlines()
            short = " | ".join(message[-4:])[:400] if message else type(exc).__name__
            note(f"{self.system}: {phase} FAILED: {short}")
            self.out["errors"][phase] = short
            return None

    # phases ------------------------------------------------------------------------------
    def enqueue(self, flavor: str) -> dict[str, Any]:
        n = self.plan.single
        self.server.flush()
        with self.session(f"enqueue-{flavor}") as s:
            s.call("warm", n=20, flavor=flavor)
            before = self.server.snapshot()
            seconds = s.call("enqueue", n=n, flavor=flavor, timeout=max(60.0, n / 20))
            after = self.server.snapshot()
        return {"per_s": n / seconds, "jobs": n, **self.server.delta(before, after, n)}

    def bulk(self) -> dict[str, Any]:
        n = self.plan.jobs
        self.server.flush()
        with self.session("bulk") as s:
            warm = s.call("bulk", n=10)
            if isinstance(warm, dict):
                return {"na": warm["na"]}
            before = self.server.snapshot()
            seconds = s.call("bulk", n=n, timeout=max(60.0, n / 50))
            after = self.server.snapshot()
        return {"per_s": n / seconds, "jobs": n, **self.server.delta(before, after, n)}

    def throughput(self, jobs: int, tag: str) -> dict[str, Any]:
        self.server.flush()
        timeout = self.plan.throughput_timeout(jobs)
        with self.session(f"throughput-{tag}") as s, \
                tempfile.TemporaryDirectory(prefix="bench-redis-") as folder:
            s.call("preload", n=jobs, timeout=max(120.0, jobs / 100))
            done = Path(folder) / "done.json"
            before = self.server.snapshot()
            proc = self.worker(s, f"throughput-{tag}",
                               {"BENCH_EXPECT": str(jobs), "BENCH_DONE": str(done)})
            with proc:
                spawned = time.monotonic()
                while not done.exists():
                    time.sleep(0.02)
                    proc.check_alive()
                    if time.monotonic() - spawned > timeout:
                        left = s.call("remaining")
                        if left == 0:
                            raise PhaseError(f"every job settled but the probe in the worker "
                                             f"did not count {jobs} runs in {timeout:g} s "
                                             "(jobs run in other processes?)")
                        raise PhaseError(f"{left} of {jobs} jobs unfinished after {timeout:g} s")
                seen_done = time.monotonic()
                while (left := s.call("remaining")) > 0:
                    proc.check_alive()
                    if time.monotonic() - seen_done > 30:
                        raise PhaseError(f"all {jobs} jobs ran but {left} still unsettled "
                                         "after 30 s")
                    time.sleep(0.05)
                settled = time.monotonic() - seen_done
                after = self.server.snapshot()
                span = json.loads(done.read_text())
                rss_job = rss_mib(span["pid"])
                rss_all, processes = tree_rss(proc.pid)
        busy = span["last"] - span["first"]
        return {"per_s": jobs / busy, "jobs": jobs, "first_start_to_last_end_s": busy,
                "spawn_to_last_end_s": seen_done - spawned, "settled_after_s": settled,
                "rss_mib_job_process": rss_job, "rss_mib_worker_tree": rss_all,
                "worker_processes": processes, **self.server.delta(before, after, jobs)}

    def pickup(self) -> dict[str, Any]:
        plan = self.plan
        self.server.flush()
        with self.session("pickup") as s, \
                tempfile.TemporaryDirectory(prefix="bench-redis-") as folder:
            stamps = Path(folder) / "stamps.txt"
            proc = self.worker(s, "pickup", {"BENCH_STAMPS": str(stamps)})
            with proc:
                def seen() -> dict[int, float]:
                    if not stamps.exists():
                        return {}
                    lines = stamps.read_text().splitlines()
                    return {int(i): float(t) for i, t in
                            (line.split() for line in lines if line.count(" ") == 1)}

                def wait_for(index: int, timeout: float) -> None:
                    deadline = time.monotonic() + timeout
                    while index not in seen():
                        proc.check_alive()
                        if time.monotonic() > deadline:
                            raise PhaseError(f"pickup job {index} not started in {timeout:g} s")
                        time.sleep(0.01)

                for warm in range(-5, 0):  # the worker is up once these have run
                    s.call("stamp", i=warm)
                    wait_for(warm, 60)
                time.sleep(1.0)
                sent = {}
                for i in range(plan.samples):
                    sent[i] = s.call("stamp", i=i)
                    time.sleep(plan.pause)
                wait_for(plan.samples - 1, 30)
                deadline = time.monotonic() + 30
                while len(started := seen()) < plan.samples + 5:
                    if time.monotonic() > deadline:
                        raise PhaseError(f"only {len(started) - 5} of {plan.samples} pickup "
                                         "jobs started in 30 s")
                    time.sleep(0.05)
                time.sleep(1.0)
                cpu = tree_idle_cpu(proc.pid, plan.idle_seconds)
                rss, processes = tree_rss(proc.pid)
        latencies = [(started[i] - before) * 1000 for i, before in sent.items()]
        return {"p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
                "max_ms": max(latencies), "samples": len(latencies),
                "pause_ms": plan.pause * 1000, "idle_cpu_percent": cpu,
                "idle_seconds": plan.idle_seconds, "idle_rss_mib_worker_tree": rss,
                "worker_processes": processes}

    # the whole system ---------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        env = PEER_ENVS[self.system]
        note(f"== {self.system}")
        if self.attempt("install", lambda: ensure(env)) is None and "install" in \
                self.out["errors"]:
            return self.out

        def info() -> dict[str, Any]:
            with self.session("info") as s:
                result: dict[str, Any] = s.call("info", timeout=120)
                # a variant's environment is the producer's too (taskiq's broker kind)
                result["variant_env"] = {v: s.call("worker", variant=v)["env"]
                                         for v in result["variants"]}
                return result

        details = self.attempt("start", info)
        if details is None:
            return self.out
        self.out["info"] = details
        variants = list(details["variants"])
        self.variant = variants[0]
        if self.plan.sweep and len(variants) > 1:
            sweep: dict[str, Any] = {}
            for variant in variants:
                self.variant = variant
                self.variant_env = details["variant_env"][variant]
                note(f"{self.system}: trying worker settings {variant!r} "
                     f"({self.plan.sweep_jobs} jobs)")
                result = self.attempt(f"sweep {variant}",
                                      lambda v=variant: self.throughput(self.plan.sweep_jobs, v))
                sweep[variant] = result["per_s"] if result else None
            self.out["sweep_per_s"] = sweep
            ok = {v: r for v, r in sweep.items() if r}
            self.variant = max(ok, key=lambda v: ok[v]) if ok else variants[0]
        self.variant_env = details["variant_env"][self.variant]
        self.out["variant"] = self.variant
        self.out["worker_settings"] = details["variants"][self.variant]
        for flavor in details["flavors"]:
            note(f"{self.system}: enqueue one at a time ({flavor}), {self.plan.single} jobs")
            result = self.attempt(f"enqueue {flavor}", lambda f=flavor: self.enqueue(f))
            if result:
                self.out.setdefault("enqueue", {})[flavor] = result
        note(f"{self.system}: bulk enqueue of {self.plan.jobs}")
        self.out["bulk"] = self.attempt("bulk", self.bulk)
        note(f"{self.system}: throughput of {self.plan.jobs} no-op jobs, one worker "
             f"({self.variant})")
        self.out["throughput"] = self.attempt("throughput",
                                              lambda: self.throughput(self.plan.jobs, "main"))
        note(f"{self.system}: pickup latency, {self.plan.samples} samples, and idle cost")
        self.out["pickup"] = self.attempt("pickup", self.pickup)
        return self.out

def paired(conveyor: Bench, peer: dict[str, Any], name: str) -> dict[str, float]:
    """conveyor measured again right after a peer, for the ratios: the machine's load
    changes over a run (other people's tests), so each ratio compares minutes, not a
    quarter of an hour apart."""
    note(f"conveyor again, beside {name}: the same phases for the ratios")
    out: dict[str, float] = {}
    phases: list[tuple[str, Callable[[], dict[str, Any]]]] = []
    for flavor in (peer.get("enqueue") or {}):
        phases.append((f"enqueue_{flavor}", lambda f=flavor: conveyor.enqueue(f)))
    if dig(peer, "bulk", "per_s"):
        phases.append(("bulk", conveyor.bulk))
    if dig(peer, "throughput", "per_s"):
        phases.append(("throughput",
                       lambda: conveyor.throughput(conveyor.plan.jobs, f"beside-{name}")))
    for key, run in phases:
        result = conveyor.attempt(f"{key} beside {name}", run)
        if result and result.get("per_s"):
            out[key] = result["per_s"]
    return out


# -- the tables -----------------------------------------------------------------------------
def dig(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or data.get(key) is None:
            return None
        data = data[key]
    return data


def enqueue_part(system: dict[str, Any]) -> dict[str, Any] | None:
    """The one-at-a-time enqueue run whose Redis costs we report: sync if there is one."""
    part = system.get("enqueue") or {}
    return part.get("sync") or part.get("async")


@dataclass(frozen=True)
class Metric:
    label: str
    unit: str
    get: Callable[[dict[str, Any]], Any]
    higher_is_better: bool = True
    paired: str = ""  # key in a peer's "paired_conveyor": conveyor re-measured beside it


def total(key: str) -> Callable[[dict[str, Any]], Any]:
    def get(system: dict[str, Any]) -> Any:
        enqueue, processing = dig(enqueue_part(system), key), dig(system, "throughput", key)
        return None if enqueue is None or processing is None else enqueue + processing
    return get


METRICS = [
    Metric("enqueue 1 at a time, sync API", "/s", lambda s: dig(s, "enqueue", "sync", "per_s"),
           paired="enqueue_sync"),
    Metric("enqueue 1 at a time, async API", "/s",
           lambda s: dig(s, "enqueue", "async", "per_s"), paired="enqueue_async"),
    Metric("bulk enqueue", "/s",
           lambda s: "n/a" if dig(s, "bulk", "na") else dig(s, "bulk", "per_s"), paired="bulk"),
    Metric("throughput, 1 worker process", "/s", lambda s: dig(s, "throughput", "per_s"),
           paired="throughput"),
    Metric("pickup p50, idle worker", "ms", lambda s: dig(s, "pickup", "p50_ms"), False),
    Metric("pickup p99, idle worker", "ms", lambda s: dig(s, "pickup", "p99_ms"), False),
    Metric("worker RSS after run (job process)", "MiB",
           lambda s: dig(s, "throughput", "rss_mib_job_process"), False),
    Metric("worker RSS after run (all processes)", "MiB",
           lambda s: dig(s, "throughput", "rss_mib_worker_tree"), False),
    Metric("idle worker CPU, % of a core", "%", lambda s: dig(s, "pickup", "idle_cpu_percent"),
           False),
    Metric("Redis cmds/job: enqueue (1 at a time)", "",
           lambda s: dig(enqueue_part(s), "commands_per_job"), False),
    Metric("Redis cmds/job: processing", "",
           lambda s: dig(s, "throughput", "commands_per_job"), False),
    Metric("Redis cmds/job: enqueue + processing", "", total("commands_per_job"), False),
    Metric("Redis CPU µs/job: enqueue", "µs",
           lambda s: dig(enqueue_part(s), "redis_cpu_us_per_job"), False),
    Metric("Redis CPU µs/job: processing", "µs",
           lambda s: dig(s, "throughput", "redis_cpu_us_per_job"), False),
    Metric("Redis CPU µs/job: enqueue + processing", "µs", total("redis_cpu_us_per_job"),
           False),
]


def fmt(value: Any, unit: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if unit == "/s":
        return f"{value:,.0f}"
    if unit in ("ms", ""):
        return f"{value:.2f}" if value < 100 else f"{value:,.0f}"
    return f"{value:,.1f}"


def failed_cell(system: dict[str, Any], metric: Metric) -> str:
    errors = system.get("errors", {})
    if "install" in errors or "start" in errors:
        return "[red]failed[/]"
    phase = {"/s": "", "ms": "pickup", "%": "pickup"}.get(metric.unit, "")
    if phase and phase in errors:
        return "[red]error[/]"
    if metric.label.startswith("throughput") and "throughput" in errors:
        return "[red]error[/]"
    return "—"


def figures_table(results: dict[str, Any], systems: list[str]) -> Table:
    table = Table(title=f"Redis {results['redis_version']}, one worker process each, "
                        f"{results['plan']['jobs']:,} jobs; same machine, same run")
    table.add_column("metric (units)")
    for name in systems:
        table.add_column(LABELS[name], justify="right")
    for metric in METRICS:
        cells = []
        for name in systems:
            system = results["systems"][name]
            value = metric.get(system)
            cells.append(fmt(value, metric.unit) if value is not None
                         else failed_cell(system, metric))
        unit = f" ({metric.unit})" if metric.unit else ""
        table.add_row(metric.label + unit, *cells)
    return table


def ratios(results: dict[str, Any], systems: list[str]) -> dict[str, dict[str, float]]:
    mine = results["systems"].get("conveyor", {})
    out: dict[str, dict[str, float]] = {}
    for metric in METRICS:
        row = {}
        for name in systems:
            theirs = metric.get(results["systems"][name])
            ours = (dig(results["systems"][name], "paired_conveyor", metric.paired)
                    if metric.paired else None) or metric.get(mine)
            if isinstance(ours, float | int) and isinstance(theirs, float | int) and theirs:
                row[name] = ours / theirs
        out[metric.label] = row
    return out


def ratio_table(results: dict[str, Any], peers: list[str]) -> Table:
    table = Table(title="conveyor ÷ peer, same run (/s: higher is better for conveyor; "
                        "ms, MiB, %, cmds, µs: lower is better)")
    table.add_column("metric")
    for name in peers:
        table.add_column(LABELS[name], justify="right")
    for metric in METRICS:
        row = results["ratios"][metric.label]
        cells = []
        for name in peers:
            value = row.get(name)
            if value is None:
                cells.append("—")
                continue
            good = value >= 1 if metric.higher_is_better else value <= 1
            cells.append(f"[{'green' if good else 'red'}]{value:.2f}x[/]")
        table.add_row(metric.label + ("" if metric.higher_is_better else " ↓"), *cells)
    return table


def settings_table(results: dict[str, Any], systems: list[str]) -> Table:
    table = Table(title="what ran: versions, worker settings (fastest of those tried), bulk API")
    for name in ("system", "versions", "worker settings used", "tried (jobs/s)", "bulk API"):
        table.add_column(name, overflow="fold")
    for name in systems:
        system = results["systems"][name]
        info = system.get("info") or {}
        versions = ", ".join(f"{k} {v}" for k, v in (info.get("versions") or {}).items() if v)
        sweep = system.get("sweep_per_s") or {}
        tried = ", ".join(f"{v}: {'error' if r is None else f'{r:,.0f}'}"
                          for v, r in sweep.items())
        bulk = info.get("bulk") or (dig(system, "bulk", "na") or "")
        table.add_row(LABELS[name], versions, system.get("worker_settings", ""), tried, bulk)
    return table


def target_lines(results: dict[str, Any]) -> list[str]:
    systems = results["systems"]
    lines: list[str] = []
    if dig(systems.get("conveyor"), "throughput", "per_s") is None:
        return lines
    paired = results["ratios"].get(METRICS[3].label, {})
    if paired.get("bullmq-node"):
        ratio = paired["bullmq-node"]
        verdict = "met" if ratio >= 4 else "NOT met"
        lines.append(f"target throughput ≥ 4x BullMQ-node: {ratio:.2f}x ({verdict})")
    python = {name: dig(systems.get(name), "throughput", "per_s") for name in PYTHON_PEERS}
    python = {name: value for name, value in python.items() if value and paired.get(name)}
    if python:
        fastest = max(python, key=lambda name: python[name])
        ratio = paired[fastest]
        verdict = "met" if ratio >= 10 else "NOT met"
        lines.append(f"target throughput ≥ 10x the fastest Python peer ({LABELS[fastest]}, "
                     f"{python[fastest]:,.0f}/s): {ratio:.2f}x ({verdict})")
    cpu = total("redis_cpu_us_per_job")(systems.get("conveyor", {}))
    if cpu is not None:
        verdict = "met" if cpu < 50 else "NOT met"
        lines.append(f"target Redis CPU < 50 µs per job (enqueue 1 at a time + processing): "
                     f"{cpu:.1f} µs ({verdict})")
    bulk = dig(systems.get("conveyor"), "bulk", "redis_cpu_us_per_job")
    processing = dig(systems.get("conveyor"), "throughput", "redis_cpu_us_per_job")
    if bulk is not None and processing is not None:
        verdict = "met" if bulk + processing < 50 else "NOT met"
        lines.append(f"  the same with bulk enqueue (enqueue_many) + processing: "
                     f"{bulk + processing:.1f} µs ({verdict})")
    return lines


def footnotes(results: dict[str, Any], systems: list[str]) -> list[str]:
    plan = results["plan"]
    lines = [
        f"Enqueue: {plan['single']:,} jobs one at a time after 20 warm-up jobs; bulk: "
        f"{plan['jobs']:,} jobs in one call. Throughput: {plan['jobs']:,} no-op jobs enqueued "
        "beforehand, then one worker process; first job's start -> last job's end as the jobs "
        "record it (worker start-up excluded); Redis figures from just before the worker "
        "starts until every job is settled in the system's own bookkeeping.",
        f"Pickup: {plan['samples']} jobs, {plan['pause'] * 1000:.0f} ms apart, on a worker "
        "that had been idle; start time in the job minus time just before enqueue. Same "
        "worker settings as the throughput run. Idle CPU over "
        f"{plan['idle_seconds']:g} s afterwards, all the worker's processes.",
        "Redis cmds/job count every command Redis executed, including those run inside Lua "
        "scripts (as INFO commandstats counts them); Redis CPU is redis-server's own CPU "
        "time (/proc). Enqueue costs are those of the sync API where there is one.",
        "Ratios of rates (/s) compare each peer with conveyor measured again right after "
        "that peer (same phases, same settings), since the machine's load drifts over a "
        "run; the first table shows conveyor's own first measurement.",
    ]
    beside = {name: dig(results["systems"][name], "paired_conveyor", "throughput")
              for name in systems}
    shown = ", ".join(f"{LABELS[name]} {value:,.0f}" for name, value in beside.items() if value)
    if shown:
        lines.append(f"conveyor throughput measured beside each peer (/s): {shown}.")
    for name in systems:
        system = results["systems"][name]
        for phase, error in system.get("errors", {}).items():
            lines.append(f"[red]{LABELS[name]} {phase} failed[/]: {error}")
        na = dig(system, "bulk", "na")
        if na:
            lines.append(f"{LABELS[name]} bulk n/a: {na}.")
    return lines


def machine() -> dict[str, Any]:
    pressure = {}
    for kind in ("cpu", "io"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            first = Path(f"/proc/pressure/{kind}").read_text().split()
            pressure[kind] = float(first[1].split("=")[1])
    return {"cores": os.cpu_count(), "loadavg": os.getloadavg(), "pressure": pressure,
            "python": platform.python_version(), "platform": platform.platform()}


def print_all(console: Console, results: dict[str, Any], systems: list[str]) -> None:
    console.print(figures_table(results, systems))
    peers = [name for name in systems if name != "conveyor"]
    if "conveyor" in systems and peers:
        console.print(ratio_table(results, peers))
    console.print(settings_table(results, systems))
    for line in target_lines(results) + footnotes(results, systems):
        console.print(line, highlight=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="small runs (2,000 jobs; a few minutes for everything)")
    parser.add_argument("--only", default="",
                        help=f"comma-separated subset of {','.join(SYSTEMS)}")
    parser.add_argument("--jobs", type=int, default=None,
                        help="jobs for the throughput and bulk runs (default 20,000; "
                             "quick 2,000)")
    parser.add_argument("--no-sweep", action="store_true",
                        help="use each system's first worker setting instead of trying all")
    parser.add_argument("--show", type=Path, default=None, metavar="JSON",
                        help="print the tables of an earlier run's results file, run nothing")
    args = parser.parse_args()
    if args.show is not None:
        shown = json.loads(args.show.read_text())
        Console(width=230).print(f"run of {time.ctime(shown['started_at'])}", highlight=False)
        print_all(Console(width=230), shown, list(shown["systems"]))
        return
    systems = [s for s in args.only.split(",") if s] or list(SYSTEMS)
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        parser.error(f"unknown system(s): {', '.join(sorted(unknown))}")
    systems = [s for s in SYSTEMS if s in systems]
    exit_on_sigterm()
    plan = Plan.make(args.quick, args.jobs, not args.no_sweep)
    started = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(started))
    RESULTS.mkdir(exist_ok=True)
    logs = RESULTS / f"redis-{stamp}-logs"
    logs.mkdir()
    results: dict[str, Any] = {"started_at": started, "plan": asdict(plan),
                               "machine_before": machine(), "systems": {}}
    with tempfile.TemporaryDirectory(prefix="bench-redis-server-") as folder:
        server = RedisServer(Path(folder))
        try:
            results["redis_version"] = server.version
            note(f"redis-server {server.version} on port {server.port}; logs in {logs}")
            reference: Bench | None = None
            for system in systems:
                bench = Bench(system, plan, server, logs)
                results["systems"][system] = bench.run()
                if system == "conveyor":
                    reference = bench if bench.out.get("throughput") else None
                elif reference is not None:
                    results["systems"][system]["paired_conveyor"] = paired(
                        reference, results["systems"][system], system)
        finally:
            server.stop()
    results["machine_after"] = machine()
    results["seconds"] = time.time() - started
    results["ratios"] = ratios(results, systems)
    console = Console()
    if not console.is_terminal:
        console = Console(width=230)  # a file or pipe: keep each row on one line
    print_all(console, results, systems)
    out = RESULTS / f"redis-{stamp}.json"
    out.write_text(json.dumps(results, indent=2))
    before, after = results["machine_before"], results["machine_after"]
    console.print(f"took {results['seconds']:.0f} s; load average {before['loadavg'][0]:.2f} "
                  f"→ {after['loadavg'][0]:.2f} on {os.cpu_count()} cores; results in "
                  f"{out.relative_to(BENCH_DIR.parent)}", highlight=False)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        note("interrupted; every process the benchmark started has been stopped")
        raise SystemExit(130) from None
