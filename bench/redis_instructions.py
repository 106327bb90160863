"""What a job costs Redis, in instructions: a figure that does not move with machine load.

    .venv/bin/python bench/redis_instructions.py [--jobs 2000]

Runs a throw-away redis-server under valgrind's callgrind (instruction counts are the same
run after run, whatever else the machine does), drives conveyor's Redis backend directly
(enqueue in batches of 500; then the worker's call: settle the previous 50 and claim the
next 50), and prints redis-server instructions per job for each phase: the run's total
minus a run that does everything but the jobs (start-up, script loading, shutdown).

To turn instructions into time on this machine, divide by the redis-server instructions
per microsecond (about 5,000 on the 2-core VM this was written on: compare with Redis CPU
per job from `bench/redis_run.py`).

To see where the instructions go, keep the three callgrind files (--keep DIR: base,
enqueue, work) and compare the inclusive cost of each function between two of them:

    callgrind_annotate --inclusive=yes --tree=calling DIR/work.out

(redis-server is stripped: commands keep their names, e.g. hsetCommand, xaddCommand,
scriptCall, parseReply; Lua's internals show as addresses.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from conveyor.backends.base import NewJob, Outcome, Settlement  # noqa: E402
from conveyor.backends.redis import RedisBackend  # noqa: E402
from conveyor.ids import new_job_id  # noqa: E402

BACKOFF = '{"kind":"exponential","base":1.0,"cap":3600.0,"jitter":true}'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def drive(url: str, jobs: int, process: bool) -> None:
    backend = RedisBackend(url)
    await backend.open()
    try:
        new = [NewJob(id=new_job_id(), queue="bench", task="noop", args_json="[]",
                      kwargs_json='{"n": 1}', backoff_json=BACKOFF) for _ in range(jobs)]
        for i in range(0, jobs, 500):
            await backend.enqueue(new[i:i + 500])
        settle: list[Settlement] = []
        while process and jobs:
            fetched = await backend.fetch(["bench"], 50, "bench-worker", 30_000, settle)
            settle = [Settlement(c.job.id, c.token, Outcome.COMPLETED, result_json="null")
                      for c in fetched.claims]
            if not settle:
                break
    finally:
        await backend.close()


def instructions(jobs: int, process: bool, keep: Path | None = None) -> int:
    """redis-server's total instructions for one run (its callgrind file kept as `keep`)."""
    with tempfile.TemporaryDirectory(prefix="bench-redis-cg-") as folder:
        out = Path(folder) / "callgrind.out"
        port = free_port()
        server = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "redis-server",
             "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", folder], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=port)
        try:
            for _ in range(600):
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    time.sleep(0.1)
            asyncio.run(drive(f"redis://127.0.0.1:{port}/0", jobs, process))
            # the server closes the connection on its way out
            with contextlib.suppress(redis.ConnectionError):
                client.shutdown(nosave=True)
            server.wait(120)
        finally:
            client.close()
            if server.poll() is None:
                server.kill()
        found = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.MULTILINE)
        if found is None:
            raise RuntimeError("callgrind wrote no totals")
        if keep is not None:
            shutil.copyfile(out, keep)
        return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep the callgrind files here (base.out, enqueue.out, work.out)")
    options = parser.parse_args()
    jobs, keep = options.jobs, options.keep
    if not shutil.which("valgrind"):
        sys.exit("valgrind is not installed (apt-get install valgrind)")
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    base = instructions(0, False, keep and keep / "base.out")
    enqueued = instructions(jobs, False, keep and keep / "enqueue.out")
    processed = instructions(jobs, True, keep and keep / "work.out")
    enqueue = (enqueued - base) / jobs
    work = (processed - enqueued) / jobs
    print(f"redis-server instructions per job ({jobs} jobs, callgrind):")
    print(f"  enqueue (batches of 500)            {enqueue:>10,.0f}")
    print(f"  claim + settle (batches of 50)      {work:>10,.0f}")
    print(f"  total                               {enqueue + work:>10,.0f}")


if __name__ == "__main__":
    main()
