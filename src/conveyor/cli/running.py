"""Running a worker from the CLI, with services beside it (``conveyor dev``'s HTTP API)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from .. import loops
from ..app import Conveyor
from ..stopping import cancel_until_done
from ..worker import Worker

# How long a dev service gets to stop on its first cancellation before it is cancelled
# again: past the HTTP API's graceful shutdown (10 s), which a second cancel would cut short.
SERVICE_GRACE = 15.0


async def run_worker(app: Conveyor, worker: Worker, *others: Coroutine[Any, Any, None]) -> None:
    """Run the worker; services beside it (dev) run until it stops, then are cancelled
    (each stops gracefully on cancellation; one that has not stopped SERVICE_GRACE
    seconds later is cancelled again, so a swallowed cancellation cannot hang the exit)."""
    worker.install_signal_handlers()
    logging.getLogger("conveyor.worker").info("event loop: %s", loops.running_name())
    services = [asyncio.ensure_future(other) for other in others]
    try:
        await worker.run()
    finally:
        for error in await cancel_until_done(*services, again_after=SERVICE_GRACE):
            logging.getLogger("conveyor").error("dev service failed: %s", error)
        await app.aclose()

