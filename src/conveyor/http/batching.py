"""Concurrent enqueues of one server process share one backend call.

A request hands its prepared job to `EnqueueBatcher.enqueue` and waits. The first job of
a batch schedules a flush for the next turn of the event loop, so every request whose
handler reaches the enqueue in the same turn joins it; the flush stores them all with one
``aenqueue_many``: one SQLite transaction, or one pipelined round trip per step on Redis.
At most `max_in_flight` stores run at once (group commit): requests that arrive while
they do wait for the next batch, so under load batches grow instead of backend calls
piling up (and emptying a connection pool). A lone request waits one loop turn.

A batch goes to the backend as one call per queue. The backend stores each atomically
and honours keys inside it (a second job with the same key returns the first), so
batching changes no answer: each request gets its own job, or the one its key already
names. If a call fails, every request of that queue's group gets the error (503). A call
refused or never sent stored none of their jobs. A call that reached the backend and got
no answer (`EnqueueOutcomeUnknownError`, Redis frozen or cut off mid-call) may have
stored them, or may store them later: its 503 says so, and repeating the request with
the same ``Idempotency-Key`` is safe (the key finds the job if it was stored).
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..app import Conveyor
from ..backends.base import NewJob
from ..handle import JobHandle

MAX_BATCH = 256
MAX_IN_FLIGHT = 4


class EnqueueBatcher:
    def __init__(self, conveyor: Conveyor, max_batch: int = MAX_BATCH,
                 max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self.conveyor = conveyor
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self.batches = 0  # backend calls made (tests, metrics)
        self._pending: list[tuple[NewJob, asyncio.Future[JobHandle[Any]]]] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def enqueue(self, job: NewJob) -> JobHandle[Any]:
        if self.conveyor.hooks.on_enqueue:
            # here, not in the shared flush: middleware sees this request's context
            # (its trace, its context variables), not the first request's of the batch
            (job,) = self.conveyor.hooks.prepared([job])
        done: asyncio.Future[JobHandle[Any]] = asyncio.get_running_loop().create_future()
        self._pending.append((job, done))
        self._schedule()
        return await done

    def _schedule(self) -> None:
        if not self._scheduled and self._pending and len(self._tasks) < self.max_in_flight:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        if not self._pending or len(self._tasks) >= self.max_in_flight:
            return  # a store in flight schedules the next flush when it ends
        batch = self._pending[:self.max_batch]
        del self._pending[:self.max_batch]
        task = asyncio.ensure_future(self._store(batch))
        self._tasks.add(task)
        task.add_done_callback(self._stored)
        self._schedule()  # more than max_batch waiting: the next batch too

    def _stored(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.get_loop().is_closed():
            self._schedule()

    async def _store(self, batch: list[tuple[NewJob, asyncio.Future[JobHandle[Any]]]]) -> None:
        # one call per queue: the backend is atomic per queue, so a failure answers
        # exactly the requests whose jobs it did not store
        by_queue: dict[str, list[tuple[NewJob, asyncio.Future[JobHandle[Any]]]]] = {}
        for item in batch:
            by_queue.setdefault(item[0].queue, []).append(item)
        await asyncio.gather(*(self._store_queue(group) for group in by_queue.values()))

    async def _store_queue(self, group: list[tuple[NewJob, asyncio.Future[JobHandle[Any]]]]
                           ) -> None:
        self.batches += 1
        try:
            handles = await self.conveyor.aenqueue_many([job for job, _ in group],
                                                        middleware=False)
        except BaseException as exc:
            for _, done in group:
                if not done.done():
                    done.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, done), handle in zip(group, handles, strict=True):
            if not done.done():
                done.set_result(handle)
