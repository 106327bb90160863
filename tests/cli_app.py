"""The app the CLI tests drive (``tests.cli_app:app``).

Tasks live at module level so a worker subprocess finds them by importing this module.
The backend URL comes from CONVEYOR_URL, which each test points at its own SQLite file.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

from conveyor import Conveyor, current_job, log, progress

app = Conveyor()


@app.on_worker_start
def refuse_when_told() -> None:
    """A start hook that fails when CLI_APP_REFUSE_START is set (a database that is down)."""
    if os.environ.get("CLI_APP_REFUSE_START"):
        raise RuntimeError("the database is down")


@app.task(queue="math")
async def add(x: int, y: int = 1) -> int:
    """Quick: reports half-way progress and returns the sum."""
    progress(50)
    return x + y


@app.task(queue="math", attempts=1)
def explode(message: str = "boom") -> None:
    """Fails on its only attempt, so it lands in the failed set at once."""
    log(f"about to fail with {message!r}")
    raise RuntimeError(message)


@app.task(queue="slow")
async def crawl(steps: int = 4, pause: float = 0.1) -> dict[str, int]:
    """Reports {"percent": ...} progress step by step."""
    for step in range(1, steps + 1):
        await asyncio.sleep(pause)
        progress({"percent": 100 * step // steps, "step": step})
    return {"steps": steps}


@app.task(queue="slow")
def nap(seconds: float = 30.0) -> str:
    """Blocks a thread for a while (keeps a job active)."""
    time.sleep(seconds)
    return "rested"


@app.task(queue="math")
def record(ledger: str) -> int:
    """Appends "<job id> <pid>" to the ledger file: which process ran which job, how often."""
    with open(ledger, "a") as file:
        file.write(f"{current_job().id} {os.getpid()}\n")
    return os.getpid()


chatter = logging.getLogger("tests.chatty")


@app.task(queue="math")
def chatty(word: str = "hello") -> str:
    """Logs through the stdlib, in a thread: the record should carry the job's fields."""
    chatter.info("saying %s", word)
    return word


@app.task(queue="math", executor="process")
def chatty_child(word: str = "hello") -> str:
    """The same from a process-executor child."""
    chatter.info("saying %s from a child", word)
    return word
