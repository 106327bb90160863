"""conveyor on SQLite against its targets, with Huey's SQLite storage side by side.

    .venv/bin/python bench/run.py [--quick] [--only conveyor|huey|raw] [--jobs N]

Runs three measurement scripts one after another, each in a fresh process and on fresh
temp database files, and prints one table:

- raw_sqlite.py         plain sqlite3 in WAL mode: the floor (context for the reader);
- conveyor_bench.py     conveyor: enqueue, bulk enqueue, one worker process's throughput,
                        pickup latency and idle cost;
- peers/huey_sqlite.py  the same for Huey (SqliteHuey), in its own virtualenv
                        bench/.venvs/huey, created on first use.

Ratios compare numbers measured in the same run (the machine is shared and noisy).
Results are also written to bench/results/sqlite-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import BENCH_DIR, exit_on_sigterm, note
from rich.console import Console
from rich.table import Table

HUEY_VENV = BENCH_DIR / ".venvs" / "huey"
HUEY_PYTHON = HUEY_VENV / "bin" / "python"
RESULTS = BENCH_DIR / "results"


@dataclass(frozen=True)
class Plan:
    jobs: int
    single: int
    samples: int
    idle_seconds: float
    concurrency: int
    huey_workers: str
    rounds: int  # one-at-a-time enqueue: conveyor and Huey take turns this many times

    @classmethod
    def make(cls, quick: bool, jobs: int | None, concurrency: int) -> Plan:
        if quick:
            return cls(jobs or 5_000, 1_000, 100, 3.0, concurrency, "1", 3)
        return cls(jobs or 20_000, 2_000, 300, 5.0, concurrency, "1,2,4", 5)


# -- running the parts ------------------------------------------------------------------
def run_json(argv: list[str]) -> dict[str, Any]:
    """Run one measurement script; its progress goes to our stderr, its JSON to us."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=BENCH_DIR)
    try:
        stdout, _ = proc.communicate()
    except BaseException:
        # Ctrl-C or SIGTERM: let the part stop the workers it started, then make sure
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed with exit code {proc.returncode}")
    result: dict[str, Any] = json.loads(stdout)
    return result


def ensure_huey() -> None:
    if (HUEY_VENV / "bin" / "huey_consumer").exists():
        return
    note(f"creating {HUEY_VENV} with Huey (first run only)")
    python3 = shutil.which("python3") or sys.executable
    subprocess.run([python3, "-m", "venv", str(HUEY_VENV)], check=True)
    subprocess.run([str(HUEY_VENV / "bin" / "pip"), "install", "--quiet", "huey"], check=True)


def run_raw(plan: Plan) -> dict[str, Any]:
    note("raw sqlite3 baseline")
    return run_json([sys.executable, "raw_sqlite.py", "--jobs", str(plan.jobs),
                     "--single", str(plan.single)])


def run_conveyor(plan: Plan, parts: str) -> dict[str, Any]:
    return run_json([sys.executable, "conveyor_bench.py", "--parts", parts,
                     "--jobs", str(plan.jobs), "--single", str(plan.single),
                     "--samples", str(plan.samples), "--idle-seconds", str(plan.idle_seconds),
                     "--concurrency", str(plan.concurrency)])


def run_huey(plan: Plan, parts: str) -> dict[str, Any]:
    ensure_huey()
    return run_json([str(HUEY_PYTHON), "peers/huey_sqlite.py", "--parts", parts,
                     "--jobs", str(plan.jobs), "--single", str(plan.single),
                     "--samples", str(plan.samples), "--idle-seconds", str(plan.idle_seconds),
                     "--workers", plan.huey_workers])


ROUND_KEYS = {"conveyor": ("enqueue_sync_per_s", "enqueue_async_per_s",
                           "enqueue_sync_full_per_s"),
              "huey": ("enqueue_single_per_s",)}


def enqueue_rounds(plan: Plan, results: dict[str, Any], who: Sequence[str]) -> None:
    """One-at-a-time enqueue, conveyor and Huey taking turns `plan.rounds` times.

    The disk's fsync time swings with other people's work, so one long measurement each
    can compare a quiet minute with a busy one. Values are the medians of the rounds;
    the ratios are the medians of the per-round ratios (stored in results["ratios"]).
    """
    rounds: list[dict[str, float]] = []
    for number in range(1, plan.rounds + 1):
        note(f"one-at-a-time enqueue, round {number} of {plan.rounds}")
        row: dict[str, float] = {}
        if "conveyor" in who:
            row.update(run_conveyor(plan, "enqueue"))
        if "huey" in who:
            row.update(run_huey(plan, "enqueue"))
        rounds.append({k: v for k, v in row.items() if isinstance(v, int | float)})
    results["enqueue_rounds"] = rounds
    for side, keys in ROUND_KEYS.items():
        if side in who:
            part = results.setdefault(side, {})
            for key in keys:
                part[key] = statistics.median(r[key] for r in rounds)
    if len(who) == 2:
        theirs = "enqueue_single_per_s"
        results["ratios"] = {
            key: statistics.median(r[key] / r[theirs] for r in rounds)
            for key in ROUND_KEYS["conveyor"]
        }


# -- the table --------------------------------------------------------------------------
def dig(data: dict[str, Any] | None, *path: str) -> float | None:
    value: Any = data
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return float(value) if isinstance(value, int | float) else None


@dataclass(frozen=True)
class Row:
    metric: str
    conveyor: float | None
    huey: float | None
    unit: str  # "/s", "ms", "%", "MiB"
    target: str = ""
    met: Callable[[Row], bool | None] | None = None  # None: cannot tell (a side missing)
    huey_note: str = ""
    paired_ratio: float | None = None  # median of per-round ratios, when measured in turns

    @property
    def ratio(self) -> float | None:
        if self.paired_ratio is not None:
            return self.paired_ratio
        if self.conveyor is not None and self.huey:
            return self.conveyor / self.huey
        return None

    def verdict(self) -> bool | None:
        if self.met is None or self.conveyor is None:
            return None
        return self.met(self)

    def cells(self) -> list[str]:
        ratio = "—" if self.ratio is None else f"{self.ratio:.2f}x"
        verdict = {None: "", True: "[green]yes[/]", False: "[red]NO[/]"}[self.verdict()]
        huey = fmt(self.huey, self.unit) + (f" {self.huey_note}" if self.huey_note else "")
        return [self.metric, fmt(self.conveyor, self.unit), huey, ratio, self.target, verdict]

    def as_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "unit": self.unit, "conveyor": self.conveyor,
                "huey": self.huey, "ratio": self.ratio, "target": self.target,
                "met": self.verdict()}


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "/s":
        return f"{value:,.0f}/s"
    if unit == "ms":
        return f"{value:.2f} ms"
    if unit == "%":
        return f"{value:.2f} %"
    return f"{value:.1f} {unit}"


def rows(conveyor: dict[str, Any] | None, huey: dict[str, Any] | None,
         ratios: dict[str, float] | None = None) -> list[Row]:
    def c(*path: str) -> float | None:
        return dig(conveyor, *path)

    def h(*path: str) -> float | None:
        return dig(huey, *path)

    def paired(key: str) -> float | None:
        return (ratios or {}).get(key)

    def vs_huey(factor: float) -> Callable[[Row], bool | None]:
        return lambda row: None if row.ratio is None else row.ratio >= factor

    def at_least(floor: float) -> Callable[[Row], bool | None]:
        return lambda row: row.conveyor is not None and row.conveyor >= floor

    def at_most(ceiling: float) -> Callable[[Row], bool | None]:
        return lambda row: row.conveyor is not None and row.conveyor <= ceiling

    huey_single = h("enqueue_single_per_s")
    flags = (huey or {}).get("throughput", {}).get("consumer_flags")
    workers = f"({flags})" if flags else ""
    return [
        Row("enqueue 1 at a time, sync (higher better)", c("enqueue_sync_per_s"),
            huey_single, "/s", "≥ 1.2x Huey", vs_huey(1.2),
            paired_ratio=paired("enqueue_sync_per_s")),
        Row("enqueue 1 at a time, async", c("enqueue_async_per_s"), huey_single, "/s",
            "≥ 1.2x Huey", vs_huey(1.2), "(sync)", paired("enqueue_async_per_s")),
        Row("  sync, conveyor ?synchronous=FULL", c("enqueue_sync_full_per_s"),
            huey_single, "/s", "(info: Huey's fsync level)",
            paired_ratio=paired("enqueue_sync_full_per_s")),
        Row("bulk: prepare + enqueue_many", c("enqueue_bulk", "per_s"),
            h("enqueue_map_per_s"), "/s", "≥ 50,000/s", at_least(50_000), "(no bulk; map)"),
        Row("  enqueue_many alone", c("enqueue_bulk", "store_only_per_s"), None,
            "/s"),
        Row("throughput, async no-op, 1 process", c("throughput_async", "per_s"),
            h("throughput", "per_s"), "/s", "≥ 10,000/s", at_least(10_000), workers),
        Row("throughput, def no-op (threads)", c("throughput_thread", "per_s"),
            h("throughput", "per_s"), "/s"),
        Row("pickup p50, idle, defaults (lower better)", c("pickup", "p50_ms"),
            h("pickup_default", "p50_ms"), "ms"),
        Row("pickup p99, idle, defaults", c("pickup", "p99_ms"),
            h("pickup_default", "p99_ms"), "ms", "≤ 5 ms", at_most(5.0)),
        Row("  p50 vs Huey polling every 1 ms", c("pickup", "p50_ms"),
            h("pickup_1ms", "p50_ms"), "ms"),
        Row("  p99 vs Huey polling every 1 ms", c("pickup", "p99_ms"),
            h("pickup_1ms", "p99_ms"), "ms", "≤ 5 ms", at_most(5.0)),
        Row("idle worker CPU (% of one core)", c("pickup", "idle_cpu_percent"),
            h("pickup_default", "idle_cpu_percent"), "%", "≪ 1 % (≤ 0.5 %)", at_most(0.5)),
        Row("  idle CPU vs Huey polling 1 ms", c("pickup", "idle_cpu_percent"),
            h("pickup_1ms", "idle_cpu_percent"), "%"),
        Row("worker RSS after throughput run", c("throughput_async", "rss_mib_after"),
            h("throughput", "rss_mib_after"), "MiB"),
        Row("worker RSS, idle", c("pickup", "idle_rss_mib"),
            h("pickup_default", "idle_rss_mib"), "MiB"),
    ]


def raw_rows(raw: dict[str, Any], conveyor: dict[str, Any] | None) -> list[list[str]]:
    def share(mine: float | None, floor: float | None) -> str:
        return "—" if mine is None or not floor else f"{100 * mine / floor:.0f} %"

    pairs = [
        ("single INSERT + COMMIT, synchronous=NORMAL", "single_insert_commit_per_s",
         dig(conveyor, "enqueue_sync_per_s")),
        ("single INSERT + COMMIT, synchronous=FULL", "single_insert_commit_full_per_s",
         dig(conveyor, "enqueue_sync_full_per_s")),
        ("bulk INSERT, one transaction", "bulk_rows_per_s",
         dig(conveyor, "enqueue_bulk", "store_only_per_s")),
        ("claim 100 + settle 100 per transaction", "claim_settle_batch100_per_s",
         dig(conveyor, "throughput_async", "per_s")),
    ]
    return [[label, fmt(dig(raw, key), "/s"), fmt(mine, "/s"), share(mine, dig(raw, key))]
            for label, key, mine in pairs]


def print_tables(console: Console, results: dict[str, Any]) -> list[Row]:
    conveyor, huey, raw = results.get("conveyor"), results.get("huey"), results.get("raw")
    table_rows = rows(conveyor, huey, results.get("ratios")) if conveyor or huey else []
    if table_rows:
        table = Table(title="conveyor (SQLite) vs Huey (SqliteHuey): one machine, same run")
        for name, justify in (("metric", "left"), ("conveyor", "right"),
                              ("Huey-SQLite", "right"), ("ratio", "right"),
                              ("target", "left"), ("met?", "center")):
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        for row in table_rows:
            table.add_row(*row.cells())
        console.print(table)
    if raw:
        table = Table(title="raw sqlite3, WAL mode (the floor under any SQLite queue)")
        for name in ("operation", "raw sqlite3", "conveyor's equivalent", "conveyor / raw"):
            table.add_column(name, justify="left" if name == "operation" else "right")
        for cells in raw_rows(raw, conveyor):
            table.add_row(*cells)
        console.print(table)
    for line in footnotes(results):
        console.print(line, highlight=False)
    return table_rows


def footnotes(results: dict[str, Any]) -> list[str]:
    lines = ["ratio = conveyor ÷ Huey (for ms, % and MiB lower is better)."]
    rounds = results.get("enqueue_rounds")
    if rounds and results.get("ratios"):
        lines.append(f"One-at-a-time enqueue: {len(rounds)} rounds, conveyor and Huey taking "
                     "turns; medians of the rounds, ratio = median of the per-round ratios.")
    elif rounds:
        lines.append(f"One-at-a-time enqueue: median of {len(rounds)} rounds.")
    conveyor, huey = results.get("conveyor") or {}, results.get("huey") or {}
    if conveyor:
        lines.append(f"conveyor: {conveyor['settings']['worker']}; "
                     f"{conveyor['settings']['url']}.")
        pickup = conveyor.get("pickup", {})
        lines.append(f"pickup: {pickup.get('samples')} jobs enqueued one at a time, "
                     f"{pickup.get('pause_ms'):.0f} ms apart; latency = task start - just "
                     "before enqueue. Throughput: first claim → last completion.")
    if huey:
        d = huey.get("durability", {})
        lines.append(f"Huey {d.get('huey_version')}: {d.get('storage')}, journal_mode="
                     f"{d.get('journal_mode')}, synchronous={d.get('synchronous')} "
                     f"({d.get('meaning')}), "
                     f"'{d.get('begin')}' per enqueue/dequeue. No bulk enqueue API "
                     "(task.map() enqueues one by one).")
        sweep = huey.get("worker_sweep_per_s")
        if sweep:
            shown = ", ".join(f"-w {w}: {v:,.0f}/s" for w, v in sweep.items())
            lines.append(f"Huey consumer threads swept on a short run ({shown}); "
                         f"the fastest was used: {huey['throughput']['consumer_flags']}.")
        lines.append(f"Huey pickup at defaults: {huey['pickup_default']['consumer_flags']}; "
                     f"fast: {huey['pickup_1ms']['consumer_flags']}.")
    return lines


def pressure() -> dict[str, float]:
    """Linux PSI "some avg10": % of the last 10 s that something waited for CPU / I/O."""
    out: dict[str, float] = {}
    for kind in ("cpu", "io"):
        try:
            first = Path(f"/proc/pressure/{kind}").read_text().split()
            out[kind] = float(first[1].split("=")[1])
        except (OSError, IndexError, ValueError):
            pass
    return out


def machine() -> dict[str, Any]:
    return {"cores": os.cpu_count(), "loadavg": os.getloadavg(), "pressure": pressure(),
            "python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
            "platform": platform.platform()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller runs (~1 minute)")
    parser.add_argument("--only", choices=["conveyor", "huey", "raw"], default=None)
    parser.add_argument("--jobs", type=int, default=None,
                        help="jobs for throughput and bulk runs (default 20,000; quick 5,000)")
    parser.add_argument("--concurrency", type=int, default=100,
                        help="conveyor worker concurrency (default 100)")
    args = parser.parse_args()
    exit_on_sigterm()
    plan = Plan.make(args.quick, args.jobs, args.concurrency)
    started = time.time()
    results: dict[str, Any] = {"started_at": started, "plan": plan.__dict__,
                               "machine_before": machine()}
    if args.only in (None, "raw"):
        results["raw"] = run_raw(plan)
    if args.only in (None, "conveyor"):
        results["conveyor"] = run_conveyor(plan, "bulk,throughput,pickup")
    if args.only in (None, "huey"):
        results["huey"] = run_huey(plan, "map,throughput,pickup")
    who = [side for side in ("conveyor", "huey") if args.only in (None, side)]
    if who:
        enqueue_rounds(plan, results, who)
    results["machine_after"] = machine()
    results["seconds"] = time.time() - started
    console = Console()
    if not console.is_terminal:
        console = Console(width=150)  # a file or pipe: keep each row on one line
    table_rows = print_tables(console, results)
    results["rows"] = [row.as_dict() for row in table_rows]
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"sqlite-{time.strftime('%Y%m%d-%H%M%S', time.localtime(started))}.json"
    out.write_text(json.dumps(results, indent=2))
    before, after = results["machine_before"], results["machine_after"]
    waits = ", ".join(f"{kind} {before['pressure'].get(kind, 0):.0f} → {value:.0f} %"
                      for kind, value in after["pressure"].items())
    console.print(f"took {results['seconds']:.0f} s; load average {before['loadavg'][0]:.2f} → "
                  f"{after['loadavg'][0]:.2f} on {os.cpu_count()} cores (pressure, PSI avg10: "
                  f"{waits or 'n/a'}); results in {out.relative_to(BENCH_DIR.parent)}",
                  highlight=False)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        note("interrupted; every process the benchmark started has been stopped")
        raise SystemExit(130) from None
