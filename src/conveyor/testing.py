"""Helpers for testing your own tasks against a real worker and a real SQLite file.

    from conveyor.testing import drain

    def test_report(tmp_path):
        app = make_app(f"sqlite:///{tmp_path}/jobs.db")   # or point CONVEYOR_URL there
        job = generate_report.enqueue(user_id=1)
        drain(app)                                        # runs a worker until idle
        assert job.result() == {...}

Jobs go through the same serialization, validation, retries and backends as in
production; there is no "eager" mode that skips them.

Delayed jobs (``delay=``, ``run_at=``, a retry's backoff) are a choice, `delayed`:

- ``"promote"`` (the default): a delayed job is made due at once and run, so a test does
  not wait out a five-minute delay or a retry's backoff; what the job does, its retries
  and its outcome are as in production, only the waiting is skipped.
- ``"wait"``: wait until each is due and run it then (bounded by `timeout`).
- ``"skip"``: leave delayed jobs delayed; return once nothing else is waiting or running.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from .backends.base import JobFilter
from .errors import ConfigurationError, ResultTimeoutError
from .jobs import JobState
from .stopping import cancel_until_done

if TYPE_CHECKING:
    from .app import Conveyor
    from .worker import Worker

Delayed = Literal["promote", "wait", "skip"]


async def adrain(app: Conveyor, queues: Sequence[str] | None = None, *,
                 timeout: float = 30.0, concurrency: int = 10, delayed: Delayed = "promote",
                 **worker_options: Any) -> int:
    """Run an in-process worker until no job of `queues` is waiting or running (nor, with
    ``delayed="wait"``, delayed; see the module docstring for `delayed`).

    Returns how many jobs it completed; ResultTimeoutError after `timeout` seconds.
    """
    from .worker import Worker

    if delayed not in ("promote", "wait", "skip"):
        raise ConfigurationError(f"delayed must be 'promote', 'wait' or 'skip', not {delayed!r}")
    worker_options.setdefault("lease", 5.0)
    worker_options.setdefault("poll_interval", 0.05)
    worker = Worker(app, queues, concurrency=concurrency, **worker_options)
    run = asyncio.ensure_future(worker.run(until_idle=True))
    watch = asyncio.ensure_future(_watch(app, worker, delayed))
    try:
        done, _ = await asyncio.wait({run}, timeout=timeout)
    finally:
        if not run.done():
            # not wait_for, which cancels once and then waits for the worker to end: a
            # cancellation swallowed inside a backend call would leave it waiting forever
            worker.stop(hard=True)
            await cancel_until_done(run)
        await cancel_until_done(watch)
    if not done:
        raise ResultTimeoutError("drain", timeout, "not idle")
    run.result()  # the worker's error, if it failed
    return worker.processed


async def _watch(app: Conveyor, worker: Worker, delayed: Delayed) -> None:
    """Beside the worker: make delayed jobs due ("promote"), or stop the worker once only
    delayed jobs are left ("skip"). "wait" needs nothing: the worker waits for them."""
    if delayed == "wait":
        return
    await app.aopen()
    backend = app.backend
    names = set(worker.queues)
    while True:
        if delayed == "promote":
            for queue in names:
                await backend.promote(JobFilter(queue=queue, states=(JobState.DELAYED,)))
        elif not any(q.counts.get(JobState.WAITING, 0) or q.counts.get(JobState.ACTIVE, 0)
                     for q in await backend.queues() if q.name in names):
            worker.stop()  # only delayed jobs left (the worker finishes what it holds)
            return
        await asyncio.sleep(worker.poll_interval)


def drain(app: Conveyor, queues: Sequence[str] | None = None, *, timeout: float = 30.0,
          concurrency: int = 10, delayed: Delayed = "promote", **worker_options: Any) -> int:
    """Sync twin of `adrain`."""
    return asyncio.run(adrain(app, queues, timeout=timeout, concurrency=concurrency,
                              delayed=delayed, **worker_options))
