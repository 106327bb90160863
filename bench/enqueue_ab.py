"""A/B of the enqueue and claim paths between two source trees (e.g. main before a change
and a worktree after it), for jobs that use none of the new options.

    .venv/bin/python bench/enqueue_ab.py A_SRC B_SRC [--rounds 7] [--only sqlite|redis]

Each round runs A then B back to back, each in a fresh process on a fresh store (a temp
SQLite file; one throw-away redis-server, a fresh key prefix per run) and measures, per
job: N single ``task.enqueue()`` calls (sync API), bulk ``app.enqueue_many`` of
1,000-job batches, and claims (``backend.fetch`` of 50 at a time until empty). It prints
the median over rounds of the CPU time per job in microseconds: the client process's on
SQLite (all the work happens there), the client's plus redis-server's (INFO cpu) on
Redis. CPU time, not wall time: on a shared 2-core machine wall time swings by 2x from
one run to the next, CPU time by about 10 %. ``--count`` counts work instead (SQLite VM
steps, Redis commands per job), which the machine's load does not change. Not a CI
test: timings go here.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHILD = """
import sys, time
from conveyor import Conveyor
app = Conveyor(sys.argv[1])
server = None
if sys.argv[1].startswith("redis"):
    import redis
    server = redis.Redis.from_url(sys.argv[1].split("?")[0])

def cpu():
    own = time.process_time()
    if server is None:
        return own
    info = server.info("cpu")
    return own + info["used_cpu_user"] + info["used_cpu_sys"]

@app.task
def noop(n: int) -> None: ...

noop.enqueue(n=0)
n = int(sys.argv[2])
t = cpu()
for i in range(n):
    noop.enqueue(n=i)
single = (cpu() - t) / n * 1e6
batches = [[noop.prepare(n=i) for i in range(1000)] for _ in range(n // 1000)]
t = cpu()
for batch in batches:
    app.enqueue_many(batch)
bulk = (cpu() - t) / (len(batches) * 1000) * 1e6
claimed = 0
t = cpu()
while True:
    got = app.run_sync(app.backend.fetch, ["default"], 50, "w", 60_000)
    if not got.claims:
        break
    claimed += len(got.claims)
claim = (cpu() - t) / claimed * 1e6
print(single, bulk, claim)
app.close()
"""


# --count: work per job that does not depend on the machine's load: SQLite VM steps
# (a progress handler every 10 steps) or Redis commands (INFO commandstats, scripts' own
# calls included)
COUNT = """
import sys
from conveyor import Conveyor
app = Conveyor(sys.argv[1])
steps = [0]
if sys.argv[1].startswith("redis"):
    import redis
    server = redis.Redis.from_url(sys.argv[1].split("?")[0])
    def cpu():
        return sum(v["calls"] for v in server.info("commandstats").values())
else:
    def tick():
        steps[0] += 10
        return 0
    app.open()
    app.backend._store._conn.set_progress_handler(tick, 10)
    def cpu():
        return steps[0]
"""


def run(src: str, url: str, jobs: int, count: bool = False) -> list[float]:
    env = {**os.environ, "PYTHONPATH": src}
    child = CHILD
    if count:  # the same phases, counting work instead of timing it
        child = COUNT + CHILD[CHILD.index("@app.task"):]
    out = subprocess.run([sys.executable, "-c", child, url, str(jobs)], check=True,
                         capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
    return [float(x) for x in out.stdout.strip().splitlines()[-1].split()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--only", choices=["sqlite", "redis"])
    parser.add_argument("--count", action="store_true",
                        help="count SQLite VM steps / Redis commands per job instead")
    opts = parser.parse_args()
    from tests.redis_server import RedisServer

    folder = tempfile.TemporaryDirectory()
    server = None if opts.only == "sqlite" else RedisServer(Path(folder.name)).start()
    try:
        for backend in ("sqlite", "redis"):
            if opts.only not in (None, backend):
                continue
            results: dict[str, list[list[float]]] = {"A": [], "B": []}
            for _ in range(opts.rounds):
                for name, src in (("A", opts.a), ("B", opts.b)):
                    with tempfile.TemporaryDirectory() as tmp:
                        url = f"sqlite:///{tmp}/ab.db"
                        if server is not None and backend == "redis":
                            url = f"{server.url}?prefix=ab{uuid.uuid4().hex[:8]}"
                        results[name].append(run(src, url, opts.jobs, opts.count))
            for name in ("A", "B"):
                scale = 1e-6 if opts.count else 1.0  # the child reports "per job * 1e6"
                single, bulk, claim = (statistics.median(c) * scale
                                       for c in zip(*results[name], strict=True))
                unit = ("VM steps" if backend == "sqlite" else "commands") if opts.count \
                    else "us CPU"
                print(f"{backend:6} {name}: {unit} per job: single enqueue {single:6.1f}  "
                      f"bulk {bulk:5.1f}  claim {claim:5.1f}", flush=True)
    finally:
        if server is not None:
            server.stop()
        folder.cleanup()


if __name__ == "__main__":
    main()
