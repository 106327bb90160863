"""What one synchronous ``task.enqueue()`` costs, on SQLite and on Redis.

    .venv/bin/python bench/sync_enqueue.py [--jobs 20000] [--rounds 3] [--only sqlite|redis]

Each round runs in a fresh process on a fresh store (a temp SQLite file; a throw-away
redis-server on a free loopback port) and times N single enqueues from sync code (the
app's sync API, which finishes every backend verb on the caller's thread). Prints the
median per-call wall time and the client process's CPU time in microseconds (on a
shared machine the CPU figure is the steadier one). Not a CI test: timings go here.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHILD = """
import sys, time
from conveyor import Conveyor
app = Conveyor(sys.argv[1])

@app.task
def noop(n: int) -> None: ...

noop.enqueue(n=0)  # connect, load scripts, create the schema
n = int(sys.argv[2])
start, cpu = time.perf_counter(), time.process_time()
for i in range(n):
    noop.enqueue(n=i)
print((time.perf_counter() - start) / n * 1e6, (time.process_time() - cpu) / n * 1e6)
app.close()
"""


def one_round(url: str, jobs: int) -> tuple[float, float]:
    """(wall, client CPU) microseconds per call."""
    out = subprocess.run([sys.executable, "-c", CHILD, url, str(jobs)], check=True,
                         capture_output=True, text=True, cwd=ROOT)
    wall, cpu = out.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=["sqlite", "redis"])
    opts = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from tests.redis_server import RedisServer

    for kind in ("sqlite", "redis"):
        if opts.only and kind != opts.only:
            continue
        figures = []
        for r in range(opts.rounds):
            with tempfile.TemporaryDirectory() as tmp:
                if kind == "sqlite":
                    figures.append(one_round(f"sqlite:///{tmp}/bench.db", opts.jobs))
                    continue
                server = RedisServer(Path(tmp)).start()
                try:
                    figures.append(one_round(f"{server.url}?prefix=b{r}", opts.jobs))
                finally:
                    server.stop()
        walls, cpus = [w for w, _ in figures], [c for _, c in figures]
        print(f"{kind}: {statistics.median(walls):.1f} us wall, "
              f"{statistics.median(cpus):.1f} us client CPU per task.enqueue() (median of "
              f"{opts.rounds} x {opts.jobs:,}; wall {', '.join(f'{w:.1f}' for w in walls)})")


if __name__ == "__main__":
    main()
