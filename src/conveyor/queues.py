"""Pausing, resuming and deleting queues by name, for the CLI, the HTTP API and the
dashboard alike.

A queue exists by having jobs, by being paused, or by being the queue of a registered
task. Pausing or resuming any other name is refused (`UnknownQueueError`), so a typo does
not make a queue that then shows in every listing; ``create=True`` pauses a queue ahead of
its first job. Deleting a queue that holds no jobs un-pauses it, and the backends list
only queues that have jobs or are paused, so it leaves every listing (a task's queue
still shows where the app's tasks are listed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .backends.base import QueueInfo
from .errors import QueueNotEmptyError, UnknownQueueError

if TYPE_CHECKING:
    from .app import Conveyor


def find(listed: list[QueueInfo], name: str) -> QueueInfo | None:
    """The backend's entry for a queue (None if it has no jobs and is not paused)."""
    return next((info for info in listed if info.name == name), None)


def check_known(app: Conveyor, listed: list[QueueInfo], name: str) -> None:
    """UnknownQueueError unless `name` has jobs, is paused or is a task's queue."""
    if name not in app.queue_names and find(listed, name) is None:
        raise UnknownQueueError(
            f"no queue named {name!r}: it has no jobs and no task uses it (known: "
            f"{', '.join(sorted(app.queue_names)) or 'none'}); to pause it ahead of its "
            "first job, ask to create it")


def to_delete(app: Conveyor, listed: list[QueueInfo], name: str) -> bool:
    """Whether deleting `name` must un-pause it (QueueNotEmptyError while it holds jobs of
    any state; a registered task's queue with nothing stored needs nothing done)."""
    info = find(listed, name)
    if info is None:
        if name in app.queue_names:
            return False
        raise UnknownQueueError(f"no queue named {name!r}")
    held = sum(info.counts.values())
    if held:
        raise QueueNotEmptyError(f"queue {name!r} holds {held} job(s); remove or purge them "
                                 "before deleting it")
    return info.paused


async def set_paused(app: Conveyor, name: str, paused: bool, create: bool = False) -> None:
    """The app's pause/resume (its sync twin runs this inline on the caller's thread)."""
    backend = await app._backend()
    if not create:
        check_known(app, await backend.queues(), name)
    await backend.set_paused(name, paused)


async def delete(app: Conveyor, name: str) -> None:
    backend = await app._backend()
    if to_delete(app, await backend.queues(), name):
        await backend.set_paused(name, False)
