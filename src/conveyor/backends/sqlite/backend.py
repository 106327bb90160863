"""The SQLite backend's verbs: one SQLite file shared by the processes of one machine.

URL forms: ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``, with optional
query parameters ``synchronous=NORMAL|FULL`` (FULL survives an OS crash, NORMAL an
application crash) and ``lock_timeout=SECONDS``.

Calls run on the caller's thread when the write lock is free (a few tens of microseconds,
so the event loop is not held up) and move to the backend's own thread only when another
process holds the lock. Inline (sync) calls always run on the caller's thread, waiting
for the lock there.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from ...errors import ConfigurationError
from ...jobs import Event, Job
from ...reentry import refuse_reentry
from ...serialization import dumps
from ..base import (
    Backend,
    Capabilities,
    Enqueued,
    Fetched,
    JobFilter,
    Lease,
    LeaseStatus,
    LimitInfo,
    NewJob,
    Outcome,
    Page,
    Pruned,
    QueueInfo,
    Retention,
    Settlement,
    WorkerInfo,
    is_inline,
)
from . import dependencies
from .schedules import SqliteSchedules
from .store import Busy, SqliteStore
from .wakeup import Listener, Notifier

T = TypeVar("T")


def parse_url(url: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(url)
    if parts.scheme != "sqlite":
        raise ConfigurationError(f"not a sqlite URL: {url!r}")
    path = parts.path
    if parts.netloc:
        raise ConfigurationError(
            f"bad sqlite URL {url!r}: use sqlite:///relative.db or sqlite:////abs/path.db"
        )
    path = path[1:] if path.startswith("/") else path
    if not path:
        raise ConfigurationError(f"bad sqlite URL {url!r}: no file path")
    params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(params) - {"synchronous", "lock_timeout"}
    if unknown:
        raise ConfigurationError(f"unknown sqlite URL parameter(s): {', '.join(sorted(unknown))}")
    return path, params


class SqliteBackend(SqliteSchedules, Backend):
    capabilities = Capabilities(multi_process=True, multi_host=False, blocking_wakeup=True,
                                inline_sync=True, flow_control=True, flows=True,
                                flows_across_queues=True)

    def __init__(self, url: str) -> None:
        self.url = url
        path, params = parse_url(url)
        synchronous = params.get("synchronous", "NORMAL").upper()
        if synchronous not in {"NORMAL", "FULL", "EXTRA"}:
            raise ConfigurationError("sqlite synchronous must be NORMAL, FULL or EXTRA")
        try:
            lock_timeout = float(params.get("lock_timeout", "30"))
        except ValueError:
            raise ConfigurationError("sqlite lock_timeout must be a number of seconds") from None
        self.path = path
        self._store = SqliteStore(path, synchronous=synchronous, lock_timeout=lock_timeout)
        self._thread: concurrent.futures.ThreadPoolExecutor | None = None
        self._notifier: Notifier | None = None
        self._listeners: dict[frozenset[str], Listener] = {}
        self._opened = False

    # -- plumbing -----------------------------------------------------------------------
    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        store = self._store
        if is_inline():
            return store.run(lambda conn: fn(conn, *args))
        try:
            return store.run(lambda conn: fn(conn, *args), attempt_only=True)
        except Busy:
            pass
        if self._thread is None:
            self._thread = concurrent.futures.ThreadPoolExecutor(1, "conveyor-sqlite")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._thread, lambda: store.run(lambda conn: fn(conn, *args))
        )

    def _notify(self, queues: Iterable[str] = ()) -> None:
        if self._notifier is not None:
            self._notifier.notify(queues)

    # -- life ---------------------------------------------------------------------------
    async def open(self) -> None:
        if self._opened:
            return
        refuse_reentry()
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder):
            raise ConfigurationError(f"folder {folder!r} for the sqlite database does not exist")
        self._store.open()
        self._notifier = Notifier(self.path)
        self._opened = True

    async def close(self) -> None:
        for listener in self._listeners.values():
            listener.close()
        self._listeners.clear()
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None
        if self._notifier is not None:
            self._notifier.close()
            self._notifier = None
        self._store.close()
        self._opened = False

    async def now(self) -> int:
        return await self._call(self._store.now)

    # -- producers ----------------------------------------------------------------------
    async def enqueue(self, jobs: Sequence[NewJob]) -> list[Enqueued]:
        out = await self._call(self._store.enqueue, jobs)
        self._notify({e.job.queue for e in out if e.created})
        return out

    # -- workers ------------------------------------------------------------------------
    async def fetch(self, queues: Sequence[str], limit: int, worker_id: str, lease_ms: int,
                    settle: Sequence[Settlement] = ()) -> Fetched:
        fetched = await self._call(self._store.fetch, queues, limit, worker_id, lease_ms, settle)
        if any(_wakes(s) for s in settle):
            self._notify()
        return fetched

    async def settle(self, settlements: Sequence[Settlement]) -> list[bool]:
        done = await self._call(self._store.settle, settlements)
        if any(_wakes(s) for s in settlements):
            self._notify()
        return done

    async def heartbeat(self, worker: WorkerInfo, leases: Sequence[Lease],
                        lease_ms: int) -> list[LeaseStatus]:
        statuses = await self._call(self._store.heartbeat, worker, leases, lease_ms)
        # Heartbeats come from each worker's keeper thread, off every hot path: the place
        # to pay for WAL checkpoints (fsync) instead of whichever writer crosses the limit.
        await self._call(self._store.checkpoint)
        return statuses

    async def progress(self, lease: Lease, value: Any) -> bool:
        return await self._call(self._store.progress, lease, dumps(value))

    async def log(self, lease: Lease, message: str) -> bool:
        return await self._call(self._store.log, lease, message)

    async def wait_for_work(self, queues: Sequence[str], timeout: float) -> None:
        key = frozenset(queues)
        listener = self._listeners.get(key)
        if listener is None:
            listener = self._listeners[key] = Listener(self.path, queues)
        await listener.wait(timeout)

    # -- maintenance --------------------------------------------------------------------
    async def rescue(self) -> list[str]:
        ids = await self._call(self._store.rescue)
        if ids:
            self._notify()
        return ids

    async def prune(self, retention: Retention) -> Pruned:
        pruned = await self._call(self._store.prune, retention)
        await self._call(self._store.checkpoint, "TRUNCATE")  # see SqliteStore.checkpoint
        return pruned

    async def try_lock(self, name: str, owner: str, ttl_ms: int) -> bool:
        return await self._call(self._store.try_lock, name, owner, ttl_ms)

    async def unregister_worker(self, worker_id: str) -> None:
        await self._call(self._store.unregister_worker, worker_id)

    # -- operators ----------------------------------------------------------------------
    async def get(self, job_id: str) -> Job | None:
        return await self._call(self._store.get, job_id)

    async def tombstone(self, job_id: str) -> int | None:
        return await self._call(self._store.tombstone, job_id)

    async def list_jobs(self, where: JobFilter, limit: int = 50,
                        cursor: str | None = None) -> Page:
        return await self._call(self._store.list_jobs, where, limit, cursor)

    async def queues(self) -> list[QueueInfo]:
        return await self._call(self._store.queues)

    async def paused_queues(self) -> set[str]:
        return await self._call(self._store.paused_queues)

    async def workers(self) -> list[WorkerInfo]:
        return await self._call(self._store.workers)

    async def events(self, after: int = 0, limit: int = 500,
                     job_id: str | None = None) -> list[Event]:
        return await self._call(self._store.events, after, limit, job_id)

    async def event_head(self) -> int:
        return await self._call(self._store.event_head)

    async def cancel(self, where: JobFilter) -> list[str]:
        ids = await self._call(self._store.act, "cancel", where)
        if ids:
            self._notify()  # a flow's dependents may be released ("continue")
        return ids

    async def retry(self, where: JobFilter) -> list[str]:
        ids = await self._call(self._store.act, "retry", where)
        if ids:
            self._notify()
        return ids

    async def promote(self, where: JobFilter) -> list[str]:
        ids = await self._call(self._store.act, "promote", where)
        if ids:
            self._notify()
        return ids

    async def remove(self, where: JobFilter) -> list[str]:
        return await self._call(self._store.act, "remove", where)

    async def set_paused(self, queue: str, paused: bool) -> None:
        await self._call(self._store.set_paused, queue, paused)
        if not paused:
            self._notify([queue])

    # -- flows --------------------------------------------------------------------------
    async def enqueue_flow(self, jobs: Sequence[NewJob]) -> list[Job]:
        store = self._store
        out = await self._call(lambda conn: dependencies.enqueue_flow(store, conn, jobs))
        self._notify({job.queue for job in out})
        return out

    async def spawn(self, lease: Lease, jobs: Sequence[NewJob]) -> list[Job]:
        store = self._store
        out = await self._call(lambda conn: dependencies.spawn(store, conn, lease, jobs))
        self._notify({job.queue for job in out})
        return out

    async def flow_jobs(self, flow_id: str) -> list[Job]:
        store = self._store
        return await self._call(lambda conn: dependencies.flow_jobs(store, conn, flow_id))

    async def cancel_flow(self, flow_id: str) -> list[str]:
        store = self._store
        return await self._call(lambda conn: dependencies.cancel_flow(store, conn, flow_id))

    # -- flow control -------------------------------------------------------------------
    async def declare_limits(self, limits: Sequence[tuple[str, str, dict[str, Any]]]) -> None:
        await self._call(self._store.declare_limits, limits)

    async def set_limit(self, queue: str, name: str, limit: dict[str, Any] | None) -> None:
        await self._call(self._store.set_limit, queue, name, limit)
        self._notify([queue])

    async def limits(self) -> list[LimitInfo]:
        return await self._call(self._store.limits)

    async def flow_blockers(self, job_id: str) -> list[dict[str, Any]]:
        return await self._call(self._store.flow_blockers, job_id)


def _wakes(s: Settlement) -> bool:
    """A settlement after which idle workers may find work: a job waiting again at once,
    or a flow-controlled job (token ending '+') leaving its concurrency slots, or a job
    others wait for ('^' in its token: its end may release them)."""
    return (s.outcome is Outcome.RELEASED or s.retry_in_ms == 0 or s.token.endswith("+")
            or "^" in s.token or s.outcome is Outcome.WAIT_CHILDREN)
