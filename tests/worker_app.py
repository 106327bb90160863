"""Tasks for the worker tests. Each run appends "<job id> <attempt> <pid>" to a ledger
file, so a test can count how many times every job really ran."""

from __future__ import annotations

import asyncio
import os
import time

from conveyor import Cancel, Conveyor, NonRetryableError, Retry, current_job, log, progress

app = Conveyor()  # CONVEYOR_URL points it at the test's database


def _record(ledger: str) -> None:
    job = current_job()
    with open(ledger, "a") as f:
        f.write(f"{job.id} {job.attempt} {os.getpid()}\n")


@app.task
async def record(ledger: str) -> str:
    _record(ledger)
    return current_job().id


@app.task(queue="slow")
async def slow(ledger: str, seconds: float) -> str:
    await asyncio.sleep(seconds)
    _record(ledger)
    return "slept"


@app.task(queue="slow")
def slow_thread(ledger: str, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if current_job().cancelled:
            with open(ledger, "a") as f:
                f.write("saw-cancel\n")
            return "stopped early"
        time.sleep(0.02)
    _record(ledger)
    return "done"


@app.task(queue="cpu", executor="process", timeout=1.0, attempts=1)
def spin(seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass
    return "spun"


@app.task(queue="cpu", executor="process")
def double(x: int) -> int:
    progress(50)
    return x * 2


@app.task(attempts=3, backoff="fixed:0.05")
def flaky_once(ledger: str) -> str:
    _record(ledger)
    if current_job().attempt == 1:
        raise ConnectionError("upstream 503")
    return "ok"


@app.task(attempts=2, backoff="fixed:0.05")
async def always_fails() -> None:
    raise ValueError("bad data")


@app.task(attempts=5)
async def fails_for_good() -> None:
    raise NonRetryableError("the account is closed")


@app.task(attempts=3)
async def asks_retry(ledger: str) -> str:
    _record(ledger)
    if current_job().attempt == 1:
        raise Retry(delay=0.05, reason="not ready yet")
    return "ready"


@app.task
async def cancels_itself() -> None:
    raise Cancel("nothing to do")


@app.task
async def reports() -> str:
    progress(10)
    log("first step")
    progress(90)
    log("last step")
    return "reported"


@app.task(timeout=0.3, attempts=1)
async def too_slow() -> None:
    await asyncio.sleep(10)


@app.task(attempts=1)
async def returns_object() -> object:
    return object()


@app.task(queue="slow", attempts=1)
async def hogs_the_loop(ledger: str, seconds: float) -> str:
    time.sleep(seconds)  # noqa: ASYNC251 - blocks the loop on purpose; the keeper renews
    _record(ledger)
    return "survived"


_in_flight = {"now": 0, "max": 0}


@app.task(queue="bounded")
async def counts_concurrency() -> int:
    _in_flight["now"] += 1
    _in_flight["max"] = max(_in_flight["max"], _in_flight["now"])
    await asyncio.sleep(0.01)
    _in_flight["now"] -= 1
    return _in_flight["max"]


@app.task(queue="slow")
def stuck_thread(seconds: float) -> str:
    time.sleep(seconds)  # never checks current_job().cancelled
    return "finally"
