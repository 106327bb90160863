"""An app that uses every public seam: worker hooks, both colours of middleware and a
third-party-style plugin. Each hook and middleware appends a line to a journal file in
$SEAMS_DIR, so a test can read what ran, where (pid) and in which order, including in
process-executor children."""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from conveyor import Conveyor, Job, current_job
from conveyor.backends.base import Backend
from conveyor.errors import InvalidOptionError
from conveyor.jobs import Event
from conveyor.middleware import Enqueuing
from conveyor.plugins import LeaderDuty, Plugin

app = Conveyor()  # CONVEYOR_URL points it at the test's store
RESOURCE: dict[str, Any] = {}  # opened by the start hook, in each process that runs jobs


def journal(line: str) -> None:
    with open(Path(os.environ["SEAMS_DIR"]) / "journal", "a") as f:
        f.write(line + "\n")


@app.on_worker_start
def open_pool() -> None:
    RESOURCE["pool"] = f"pool-{os.getpid()}"
    journal(f"start {os.getpid()}")


@app.on_worker_start
def fail_in_the_first_child() -> None:
    """With $SEAMS_FAIL_FIRST_CHILD set: the first process-executor child's start fails."""
    marker = os.environ.get("SEAMS_FAIL_FIRST_CHILD")
    if marker and multiprocessing.parent_process() is not None and not os.path.exists(marker):
        Path(marker).touch()
        raise RuntimeError("the first child cannot open its pool")


@app.on_worker_stop
async def close_pool() -> None:
    journal(f"stop {os.getpid()} {RESOURCE.pop('pool', None)}")


class Outer:
    """Async middleware: stamps every enqueue and wraps every attempt on the loop."""

    def on_enqueue(self, job: Enqueuing) -> None:
        job.meta["stamp"] = f"stamped-{job.task}"

    async def around_job(self, job: Job, call_next: Callable[[], Awaitable[Any]]) -> Any:
        journal(f"outer-before {job.id} {job.attempt}")
        try:
            result = await call_next()
        except Exception as exc:
            journal(f"outer-after {job.id} {job.attempt} error:{type(exc).__name__}")
            raise
        journal(f"outer-after {job.id} {job.attempt} ok:{result['n']}")
        return result


class Inner:
    """Sync middleware: runs in the thread or child process that runs the body."""

    def around_job(self, job: Job, call_next: Callable[[], Any]) -> Any:
        journal(f"inner {job.id} {os.getpid()} {threading.get_ident()}")
        return call_next()


app.add_middleware(Outer())
app.add_middleware(Inner())


def _answer(n: int) -> dict[str, Any]:
    job = current_job().job
    return {"n": n, "pool": RESOURCE.get("pool"), "stamp": job.meta.get("stamp"),
            "pid": os.getpid(), "thread": threading.get_ident(),
            "tag": job.meta.get("tag")}


@app.task
async def on_loop(n: int) -> dict[str, Any]:
    return _answer(n)


@app.task
def in_thread(n: int) -> dict[str, Any]:
    return _answer(n)


@app.task(executor="process", timeout=30)
def in_child(n: int) -> dict[str, Any]:
    return _answer(n)


@app.task(backoff="fixed:0.01", attempts=3)
async def flaky(n: int) -> dict[str, Any]:
    if current_job().attempt == 1:
        raise ValueError("first attempt fails")
    return _answer(n)


class Tagging(Plugin):
    """A plugin as a third party would write one: an option, a leader duty, an event
    subscriber and a middleware, with no change to the core."""

    name = "acme.tagging"
    options = ("tag",)

    def __init__(self) -> None:
        self.duty_runs = 0
        self.seen: list[Event] = []

    def check_option(self, name: str, value: Any) -> Any:
        if not isinstance(value, str) or not value.isalnum():
            raise InvalidOptionError("tag must be letters and digits")
        return value.lower()

    def setup(self, app: Conveyor) -> None:
        app.add_middleware(self)

    def on_enqueue(self, job: Enqueuing) -> None:
        if "tag" in job.meta:
            job.meta["tagged_by"] = self.name

    def leader_duties(self) -> Sequence[LeaderDuty]:
        return [self.duty]

    async def duty(self, backend: Backend) -> None:
        self.duty_runs += 1
        journal(f"duty {os.getpid()}")

    async def on_events(self, events: Sequence[Event]) -> None:
        self.seen.extend(events)


tagging = app.install(Tagging())
