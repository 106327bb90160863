"""Tasks for the HTTP tests. `record` appends "<job id> <attempt> <pid>" to a ledger file,
so a test can count how many times each accepted job really ran."""

from __future__ import annotations

import asyncio
import os

from conveyor import Conveyor, current_job, log, progress

app = Conveyor()  # CONVEYOR_URL points it at the test's store


def _record(ledger: str) -> str:
    job = current_job()
    with open(ledger, "a") as f:
        f.write(f"{job.id} {job.attempt} {os.getpid()}\n")
    return job.id


@app.task(expose=True)
async def record(ledger: str, n: int = 0) -> str:
    """Append this job to the ledger."""
    return _record(ledger)


@app.task(expose=True)
async def add(x: int, y: int = 0) -> int:
    return x + y


@app.task(expose=True, queue="reports")
async def report(steps: int = 5, pause: float = 0.05) -> dict[str, int]:
    """Reports progress and logs a line at each step."""
    for step in range(1, steps + 1):
        await asyncio.sleep(pause)
        progress({"step": step, "of": steps})
        log(f"step {step}")
    return {"steps": steps}


@app.task(expose=True, attempts=1)
async def explode() -> None:
    raise ValueError("boom")


@app.task(expose=True)
async def nothing() -> str:
    return "done"


@app.task
async def internal(secret: str) -> str:
    """Not exposed: HTTP clients must not reach it."""
    return secret


@app.task(expose=True)
async def echo(*args: object, **kwargs: object) -> list[object]:
    """Any JSON in, the same back."""
    return [list(args), kwargs]
