"""Job middleware and worker lifecycle hooks: the public ways to hook into a worker.

    @app.on_worker_start                 # once per worker process and per process child
    def open_pool() -> None: ...

    @app.on_worker_stop                  # after running jobs finished or were handed back
    async def close_pool() -> None: ...

    class Timing:
        def on_enqueue(self, job):                  # every job before it is stored
            job.meta["enqueued_by"] = "web-3"
        async def around_job(self, job, call_next): # every attempt, on the worker's loop
            started = time.perf_counter()
            try:
                return await call_next()
            finally:
                log.info("%s took %.3fs", job.id, time.perf_counter() - started)

    app.add_middleware(Timing())

`around_job` comes in two colours, and each runs where it can wrap the job's code:

- ``async def around_job``: on the worker's event loop, around every attempt of every
  executor (for thread and process tasks it awaits the thread or the child).
- ``def around_job``: in the thread that runs the task's body: the thread of a ``def``
  task, the child of a process task. For an ``async def`` task it runs in a pool thread
  that waits for the body on the loop. Use it for per-thread state such as Django's
  ``close_old_connections()`` or a Flask app context.

Async middleware are outer, sync ones inner; within each colour the first added is the
outermost. A middleware that raises fails the attempt with its error recorded (retries
apply); it never stops the worker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson

from .backends.base import NewJob
from .errors import ConfigurationError, InvalidOptionError, WorkerStartError
from .jobs import Job
from .serialization import dumps_checked

Hook = Callable[[], Any]
AsyncAround = Callable[[Job, Callable[[], Awaitable[Any]]], Awaitable[Any]]
SyncAround = Callable[[Job, Callable[[], Any]], Any]


@dataclasses.dataclass(slots=True)
class Enqueuing:
    """A job about to be stored, as `on_enqueue` middleware sees it; only `meta` is theirs
    to change (add entries; they reach the worker in ``job.meta``)."""

    id: str
    task: str
    queue: str
    args: list[Any]
    kwargs: dict[str, Any]
    meta: dict[str, Any]


class Hooks:
    """An app's middleware and worker hooks, sorted once by where they run."""

    def __init__(self) -> None:
        self.middleware: list[Any] = []
        self.on_enqueue: list[Callable[[Enqueuing], None]] = []
        self.around_async: list[AsyncAround] = []
        self.around_sync: list[SyncAround] = []
        self.worker_start: list[Hook] = []
        self.worker_stop: list[Hook] = []

    def add_middleware(self, middleware: Any) -> None:
        on_enqueue = getattr(middleware, "on_enqueue", None)
        around = getattr(middleware, "around_job", None)
        if not callable(on_enqueue) and not callable(around):
            raise ConfigurationError(f"{type(middleware).__name__} is not middleware: it has "
                                     "neither on_enqueue(job) nor around_job(job, call_next)")
        self.middleware.append(middleware)
        if callable(on_enqueue):
            self.on_enqueue.append(on_enqueue)
        if inspect.iscoroutinefunction(around):
            self.around_async.append(around)
        elif callable(around):
            self.around_sync.append(around)

    def add_hook(self, when: str, hook: Hook) -> None:
        if not callable(hook):
            raise ConfigurationError(f"a worker {when} hook must be callable")
        (self.worker_start if when == "start" else self.worker_stop).append(hook)

    # -- enqueue ------------------------------------------------------------------------
    def prepared(self, jobs: Sequence[NewJob]) -> list[NewJob]:
        """Show each job to the `on_enqueue` middleware; returns the jobs to store."""
        out = []
        for job in jobs:
            seen = Enqueuing(job.id, job.task, job.queue, orjson.loads(job.args_json),
                             orjson.loads(job.kwargs_json), orjson.loads(job.meta_json))
            for hook in self.on_enqueue:
                hook(seen)
            if not isinstance(seen.meta, dict):
                raise InvalidOptionError("on_enqueue middleware left meta that is not a dict")
            meta_json = dumps_checked(seen.meta, "meta")
            out.append(dataclasses.replace(job, meta_json=meta_json))
        return out

    # -- one attempt --------------------------------------------------------------------
    async def around_async_job(self, job: Job, body: Callable[[], Awaitable[Any]]) -> Any:
        call = body
        for around in reversed(self.around_async):
            call = functools.partial(around, job, call)
        return await call()

    def around_sync_job(self, job: Job, body: Callable[[], Any]) -> Any:
        call = body
        for around in reversed(self.around_sync):
            call = functools.partial(around, job, call)
        return call()

    # -- worker life --------------------------------------------------------------------
    async def start_worker(self) -> None:
        """Run the start hooks (async ones awaited); the first that raises stops it."""
        for hook in self.worker_start:
            try:
                result = hook()
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                raise WorkerStartError(f"worker start hook {_name(hook)} failed: "
                                       f"{type(exc).__name__}: {exc}") from exc

    async def stop_worker(self) -> list[str]:
        """Run every stop hook, even after one fails; the failures, as lines to log."""
        failures = []
        for hook in self.worker_stop:
            try:
                result = hook()
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                failures.append(f"worker stop hook {_name(hook)} failed: "
                                f"{type(exc).__name__}: {exc}")
        return failures

    def start_worker_blocking(self) -> None:
        """The start hooks where no loop runs (a process child)."""
        asyncio.run(self.start_worker())

    def stop_worker_blocking(self) -> list[str]:
        return asyncio.run(self.stop_worker())


def _name(hook: Any) -> str:
    return getattr(hook, "__qualname__", None) or repr(hook)
