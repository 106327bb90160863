"""Worker hooks, job middleware and a plugin: the seams every extension of conveyor uses.

Run it: `python -m examples.hooks` (a fresh SQLite file in a temp folder; prints what ran).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from conveyor import Conveyor, Enqueuing, Job, Plugin
from conveyor.backends.base import Backend
from conveyor.errors import InvalidOptionError
from conveyor.jobs import Event
from conveyor.plugins import LeaderDuty

log = logging.getLogger("examples.hooks")
app = Conveyor()
POOL: dict[str, Any] = {}


@app.on_worker_start  # once per worker process, and in each process-executor child
def open_pool() -> None:
    POOL["db"] = "a connection pool"


@app.on_worker_stop  # after running jobs finished or were handed back
async def close_pool() -> None:
    POOL.clear()


class Timing:
    """Stamps each job at enqueue and logs how long each attempt took."""

    def on_enqueue(self, job: Enqueuing) -> None:
        job.meta["enqueued_by"] = "web-1"

    async def around_job(self, job: Job, call_next: Callable[[], Awaitable[Any]]) -> Any:
        started = time.perf_counter()
        try:
            return await call_next()
        finally:
            log.info("%s attempt %d took %.3fs", job.id, job.attempt,
                     time.perf_counter() - started)


class CloseConnections:
    """A sync middleware runs in the thread (or child) that runs the job's body: where
    Django's close_old_connections() or a Flask app context belong."""

    def around_job(self, job: Job, call_next: Callable[[], Any]) -> Any:
        try:
            return call_next()
        finally:
            pass  # e.g. django.db.close_old_connections()


app.add_middleware(Timing())
app.add_middleware(CloseConnections())


class Audit(Plugin):
    """A plugin: its own enqueue option, a leader duty, an event subscriber."""

    name = "example.audit"
    options = ("audit",)

    def check_option(self, name: str, value: Any) -> Any:
        if value not in ("low", "high"):
            raise InvalidOptionError("audit must be 'low' or 'high'")
        return value

    def leader_duties(self) -> Sequence[LeaderDuty]:
        return [self.sweep]

    async def sweep(self, backend: Backend) -> None:
        """Runs in one worker at a time (the maintenance lock's holder), every beat."""

    async def on_events(self, events: Sequence[Event]) -> None:
        """Every event, in order, in the HTTP service (`conveyor serve`)."""


app.install(Audit())


@app.task
async def charge(order: int) -> dict[str, Any]:
    from conveyor import current_job

    return {"order": order, "pool": POOL.get("db"),
            "enqueued_by": current_job().job.meta.get("enqueued_by")}


def main() -> dict[str, Any]:
    from conveyor.testing import drain

    with tempfile.TemporaryDirectory() as folder:
        app.use(f"sqlite:///{folder}/hooks.db")
        job = charge.options(audit="high").enqueue(order=42)
        drain(app)
        result: dict[str, Any] = job.result(timeout=10)
        app.close()
    return result


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    print(main())
