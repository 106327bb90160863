"""Flow control costs and precision, measured at the backend contract (one process).

    python bench/flow_control.py sqlite:////tmp/fc.db none      # no-op throughput, no limits
    python bench/flow_control.py sqlite:////tmp/fc.db cap50     # a global concurrency cap of 50
    python bench/flow_control.py sqlite:////tmp/fc.db keys1000  # 1,000 keys at 1 job/s each
    python bench/flow_control.py sqlite:////tmp/fc.db rate1000  # precision of a 1,000/s limit

A "worker" here is a loop of fetch(limit 50) that completes its previous batch in the same
call, so the figure is the claim + settle path itself. `none` runs against any version of
conveyor (it passes no flow group), for before/after comparisons: point PYTHONPATH at the
tree to measure. The database file is removed first.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

from conveyor.backends import backend_for
from conveyor.backends.base import Backend, NewJob, Outcome, Settlement
from conveyor.ids import new_job_id

BATCH = 50


def jobs(n: int, flow: Any = None, keys: int = 1) -> list[NewJob]:
    out = []
    for i in range(n):
        fields: dict[str, Any] = {}
        if flow is not None:
            fields["flow"] = flow(i % keys)
        out.append(NewJob(id=new_job_id(), queue="bench", task="noop", args_json="[]",
                          kwargs_json="{}", **fields))
    return out


async def run(backend: Backend, total: int, until: float | None = None) -> tuple[float, list[int]]:
    """Claim and complete until `total` jobs ran (or `until` seconds passed)."""
    done, settle, starts = 0, [], []
    t0 = time.perf_counter()
    while done < total:
        fetched = await backend.fetch(["bench"], BATCH, "bench-worker", 60_000, settle)
        settle = [Settlement(c.job.id, c.token, Outcome.COMPLETED, "null")
                  for c in fetched.claims]
        starts += [c.job.started_at or 0 for c in fetched.claims]
        done += len(fetched.claims)
        if until is not None and time.perf_counter() - t0 > until:
            break
        if not fetched.claims and fetched.next_due_in_ms:
            await asyncio.sleep(min(fetched.next_due_in_ms, 50) / 1000)
    if settle:
        await backend.settle(settle)
    return time.perf_counter() - t0, starts


def max_in_window(starts: list[int], window_ms: int) -> int:
    starts = sorted(starts)
    best, lo = 0, 0
    for hi, t in enumerate(starts):
        while t - starts[lo] >= window_ms:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


async def main(url: str, mode: str, n: int) -> None:
    path = url.split("sqlite:///", 1)[-1]
    if url.startswith("sqlite") and os.path.exists(path):
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
    backend = backend_for(url)
    await backend.open()
    from conveyor.serialization import dumps

    if mode == "none":
        batch = jobs(n)
    elif mode == "cap50":
        await backend.declare_limits([("bench", "task:noop", {"rate": None, "concurrency": 50})])
        batch = jobs(n, lambda _: dumps([["task:noop", "", ""]]))
    elif mode == "keys1000":
        await backend.declare_limits([("bench", "task:noop",
                                       {"rate": [1, 1000], "concurrency": None})])
        n = 3000
        batch = jobs(n, lambda k: dumps([["task:noop", f"k{k}", ""]]), keys=1000)
    else:
        await backend.declare_limits([("bench", "task:noop",
                                       {"rate": [1000, 1000], "concurrency": None})])
        n = 5000
        batch = jobs(n, lambda _: dumps([["task:noop", "", ""]]))
    for i in range(0, len(batch), 1000):
        await backend.enqueue(batch[i:i + 1000])
    elapsed, starts = await run(backend, n)
    print(f"{mode}: {n} jobs in {elapsed:.2f}s = {n / elapsed:,.0f} jobs/s")
    if mode in ("rate1000", "keys1000"):
        span = (max(starts) - min(starts)) / 1000
        print(f"  achieved {len(starts) / max(span, 1e-9):,.0f} starts/s over {span:.2f}s "
              f"(backend clock); max starts in any 1 s window: {max_in_window(starts, 1000)}")
    await backend.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "none",
                     int(sys.argv[3]) if len(sys.argv) > 3 else 20_000))
