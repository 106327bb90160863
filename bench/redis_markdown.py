"""A markdown table (one row per system) from one or more results files of redis_run.py,
for the README: each cell shows the runs' values side by side, "a / b". The ratio column
is conveyor ÷ peer with conveyor measured right after that peer (see redis_run.paired).

    .venv/bin/python bench/redis_markdown.py bench/results/redis-A.json bench/results/redis-B.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from redis_run import LABELS, METRICS, SYSTEMS, dig, enqueue_part, total

COLUMNS: list[tuple[str, Any, str]] = [
    ("enqueue 1 at a time /s", lambda s: dig(s, "enqueue", "sync", "per_s")
     or dig(s, "enqueue", "async", "per_s"), "rate"),
    ("bulk enqueue /s", lambda s: "n/a" if dig(s, "bulk", "na") else dig(s, "bulk", "per_s"),
     "rate"),
    ("throughput, 1 process /s", lambda s: dig(s, "throughput", "per_s"), "rate"),
    ("conveyor ÷ peer, throughput", None, "ratio"),
    ("pickup p50 / p99 ms", None, "pickup"),
    ("worker RSS MiB", lambda s: dig(s, "throughput", "rss_mib_worker_tree"), "mib"),
    ("Redis cmds/job (enqueue + processing)", total("commands_per_job"), "cmds"),
    ("Redis CPU µs/job (enqueue + processing)", total("redis_cpu_us_per_job"), "us"),
]


def cell(value: Any, kind: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if kind == "rate":
        return f"{value:,.0f}"
    if kind == "cmds":
        return f"{value:.1f}"
    return f"{value:,.0f}"


def main() -> None:
    runs = [json.loads(Path(arg).read_text()) for arg in sys.argv[1:]]
    names = [name for name in SYSTEMS if any(name in run["systems"] for run in runs)]
    print("| system | " + " | ".join(title for title, _, _ in COLUMNS) + " |")
    print("| --- |" + " ---: |" * len(COLUMNS))
    for name in names:
        cells = []
        for _, get, kind in COLUMNS:
            values = []
            for run in runs:
                system = run["systems"].get(name, {})
                if kind == "ratio":
                    value = run["ratios"].get(METRICS[3].label, {}).get(name)
                    values.append("" if name == "conveyor" else
                                  "—" if value is None else f"{value:.1f}x")
                elif kind == "pickup":
                    p50, p99 = dig(system, "pickup", "p50_ms"), dig(system, "pickup", "p99_ms")
                    values.append("—" if p50 is None else f"{p50:.1f} / {p99:.1f}")
                else:
                    values.append(cell(get(system), kind))
            if len(set(values)) == 1 and values[0] in ("n/a", "—", ""):
                values = values[:1]
            cells.append(" ; ".join(values) if kind == "pickup" else " / ".join(values))
        enqueue = enqueue_part(runs[0]["systems"].get(name, {})) or {}
        label = LABELS[name] + (" (async)" if enqueue and not dig(
            runs[0]["systems"][name], "enqueue", "sync") else "")
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
