"""Stopping asyncio tasks for sure, even when a cancellation is swallowed.

A cancellation delivered while a task awaits a redis-py (8.1) asyncio call is sometimes
swallowed inside the client stack (about 1 in 3 in a task looping over ``list_jobs``): the
task goes on as if nothing happened, and whoever cancelled it once and then awaited it
waits forever. Whatever stops a task that may be inside a backend call does it here:
cancel, wait a moment, cancel again while the task still runs. A loop that can check a
"closing" flag of its own should do so too, so that it ends at its next turn whatever
became of the cancellation.
"""

from __future__ import annotations

import asyncio
from typing import Any

AGAIN_AFTER = 0.2  # seconds: a cancellation that took effect has ended a task by then


async def cancel_until_done(*tasks: asyncio.Future[Any],
                            again_after: float = AGAIN_AFTER) -> list[BaseException]:
    """Cancel `tasks` and return once every one has ended, cancelling again each
    `again_after` seconds those still running (give more time to a task that stops
    gracefully on its first cancellation).

    Returns the errors the tasks ended with (a cancellation is not one); they count as
    retrieved. If the caller is cancelled meanwhile, the tasks still running are cancelled
    once more and the caller's cancellation goes on: it is never held back here.
    """
    pending = {task for task in tasks if not task.done()}
    try:
        while pending:
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=again_after)
    except asyncio.CancelledError:
        for task in pending:
            task.cancel()
        raise
    return [error for task in tasks
            if not task.cancelled() and (error := task.exception()) is not None]
