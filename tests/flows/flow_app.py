"""Tasks for the flow tests; each run appends "<job id> <task> <attempt> <pid>" to the
ledger file in $FLOW_LEDGER, so a test can check order and count runs."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from conveyor import Conveyor, NonRetryableError, Retry, current_job

app = Conveyor()  # CONVEYOR_URL points it at the test's database


def _record(task: str) -> None:
    job = current_job()
    with open(os.environ["FLOW_LEDGER"], "a") as f:
        f.write(f"{job.id} {task} {job.attempt} {os.getpid()}\n")


@app.task
async def number(n: int) -> int:
    _record("number")
    return n


@app.task
async def add(n: int, previous: int | None = None) -> int:
    _record("add")
    return (previous or 0) + n


@app.task
def boom(n: int = 0) -> None:
    _record("boom")
    raise NonRetryableError("boom")


@app.task(attempts=10)
async def flaky(fail_times: int) -> int:
    _record("flaky")
    if current_job().attempt <= fail_times:
        raise Retry(delay=0)
    return current_job().attempt


@app.task
async def collect(results: list[Any] | None = None) -> dict[str, Any]:
    _record("collect")
    ctx = current_job()
    return {"passed": results, "results": list(ctx.dependency_results().values()),
            "failures": len(ctx.dependency_failures())}


@app.task(attempts=3)
async def flaky_callback(results: list[Any] | None = None) -> int:
    _record("flaky_callback")
    if current_job().attempt < 3:
        raise Retry(delay=0)
    return sum(r for r in results or [] if r is not None)


@app.task(max_stalls=10)  # workers are killed three times: a job may be taken back twice
async def step(n: int) -> int:
    """Marks its start and its end, so a test can tell a dependent started after its
    dependencies ended."""
    _record("start")
    await asyncio.sleep(0.02)
    _record("end")
    return n


@app.task
async def fan_out(n: int) -> list[int]:
    """Spawns n children on its first run; sums their results on the next."""
    _record("fan_out")
    done = current_job().dependency_results()
    if not done:
        current_job().spawn(*(number.prepare(i) for i in range(n)))
        return []
    return sorted(done.values())


@app.task(executor="process")
def in_child(previous: int | None = None) -> dict[str, Any]:
    """Runs in a process-executor child: its dependencies travel with the job."""
    return {"passed": previous, "results": list(current_job().dependency_results().values())}
