"""The README's "Define tasks, enqueue jobs": an app and two tasks (examples/enqueue.py
enqueues them). The app stores jobs in conveyor.db in the current folder."""

from __future__ import annotations

import asyncio

from conveyor import Conveyor, Retry, current_job, log, progress

app = Conveyor("sqlite:///conveyor.db")   # without a URL: $CONVEYOR_URL, else this file


@app.task(queue="reports", attempts=5, backoff="30s,2m,10m,1h", timeout=120)
async def generate_report(user_id: int, days: int = 30) -> dict[str, int]:
    progress(10)                          # a percent, or any JSON value
    log("fetching usage")                 # kept with the job, streamed live
    if days > 365:
        raise Retry(delay=3600)           # run again in an hour (a new attempt)
    await asyncio.sleep(0.01)             # the real work
    return {"user_id": user_id, "score": 97, "attempt": current_job().attempt}


@app.task(executor="process", timeout=60)  # CPU-bound: child process, hard timeout
def render(seed: int) -> str:
    return f"thumbnail-{seed}"
