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
    try:
        await asyncio.wait_for(worker.run(until_idle=True), timeout)
    except TimeoutError:
        raise ResultTimeoutError("drain", timeout, "not idle") from None
    return worker.processed


def drain(app: Conveyor, queues: Sequence[str] | None = None, *, timeout: float = 30.0,
          concurrency: int = 10, **worker_options: Any) -> int:
    """Sync twin of `adrain`."""
    return asyncio.run(adrain(app, queues, timeout=timeout, concurrency=concurrency,
                              **worker_options))
