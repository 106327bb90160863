"""Helpers for testing your own tasks against a real worker and a real SQLite file.

    from conveyor.testing import drain

    def test_report(tmp_path):
        app = make_app(f"sqlite:///{tmp_path}/jobs.db")   # or point CONVEYOR_URL there
        job = generate_report.enqueue(user_id=1)
        drain(app)                                        # runs a worker until idle
        assert job.result() == {...}

Jobs go through the same serialization, validation, retries and backends as in
production; there is no "eager" mode that skips them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .errors import ResultTimeoutError
from .stopping import cancel_until_done

if TYPE_CHECKING:
    from .app import Conveyor


async def adrain(app: Conveyor, queues: Sequence[str] | None = None, *,
                 timeout: float = 30.0, concurrency: int = 10, **worker_options: Any) -> int:
    """Run an in-process worker until no job of `queues` is waiting, delayed or running.

    Returns how many jobs it completed; ResultTimeoutError after `timeout` seconds.
    """
    from .worker import Worker

    worker_options.setdefault("lease", 5.0)
    worker_options.setdefault("poll_interval", 0.05)
    worker = Worker(app, queues, concurrency=concurrency, **worker_options)
    run = asyncio.ensure_future(worker.run(until_idle=True))
    try:
        done, _ = await asyncio.wait({run}, timeout=timeout)
    finally:
        if not run.done():
            # not wait_for, which cancels once and then waits for the worker to end: a
            # cancellation swallowed inside a backend call would leave it waiting forever
            worker.stop(hard=True)
            await cancel_until_done(run)
    if not done:
        raise ResultTimeoutError("drain", timeout, "not idle")
    run.result()  # the worker's error, if it failed
    return worker.processed


def drain(app: Conveyor, queues: Sequence[str] | None = None, *, timeout: float = 30.0,
          concurrency: int = 10, **worker_options: Any) -> int:
    """Sync twin of `adrain`."""
    return asyncio.run(adrain(app, queues, timeout=timeout, concurrency=concurrency,
                              **worker_options))
