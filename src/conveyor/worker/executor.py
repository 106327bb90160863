"""The executor: one claimed job to one settlement, inside the app's middleware.

``async def`` tasks run on the loop, ``def`` tasks in the worker's thread pool and
``executor="process"`` tasks in child processes with hard timeouts (processes.py). Job
middleware (middleware.py) wraps each attempt: async middleware on the loop; sync
middleware in the thread or child that runs the body (for an ``async def`` body, in a pool
thread that waits for it, so per-thread state such as a DB connection is theirs).

An attempt ends as one `Settlement`: completed, failed (retry or give up, by the task's
backoff), cancelled, rate limited (the task raised RateLimited: back uncharged, its
limiters paused), or released (handed back when the worker stops) - or as none at all
when the lease was lost (another worker owns the job). A task's progress and log lines go
to the backend in order, by one sender per job, before its settlement is handed on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import functools
import logging
import threading
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from .. import backoff
from ..backends.base import Claim, Outcome, Settlement
from ..context import JobContext, reset_current, set_current
from ..flows import META
from ..flows import runtime as flow_runtime
from ..outcomes import Cancel, NonRetryableError, RateLimited, Retry
from ..serialization import dumps
from .processes import Encoded, ProcessPool, TaskError
from .threads import DaemonThreadPool

if TYPE_CHECKING:
    from ..app import Conveyor
    from ..task import Task

log = logging.getLogger("conveyor.worker")


@dataclasses.dataclass(slots=True)
class Running:
    claim: Claim
    ctx: JobContext
    task: asyncio.Task[None] | None = None
    stop_reason: str | None = None  # "cancel" | "lost" | "shutdown"
    reports: list[tuple[str, Any]] = dataclasses.field(default_factory=list)
    reporter: asyncio.Task[None] | None = None


class Executor:
    """Runs claimed jobs; hands each one's settlement (None: lease lost) to `finished`."""

    def __init__(self, app: Conveyor, worker_id: str, threads: DaemonThreadPool,
                 processes: ProcessPool,
                 finished: Callable[[str, Settlement | None], None]) -> None:
        self.app = app
        self.worker_id = worker_id
        self.running: dict[str, Running] = {}
        self._threads = threads
        self._processes = processes
        self._finished = finished
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self.processed = 0
        self.failed = 0

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop jobs run on (called on it): reports from other threads go there."""
        self._loop = loop
        self._loop_thread = threading.get_ident()

    def start(self, claim: Claim) -> Running:
        running = Running(claim, JobContext(claim.job, report=_no_report))
        running.ctx.report = functools.partial(self._report, running)
        running.ctx.flows = flow_runtime.WorkerFlowAccess(self.app, claim.lease)
        self.running[claim.job.id] = running
        running.task = asyncio.create_task(self._run(running))
        return running

    # -- reports: progress and log lines ------------------------------------------------
    def _report(self, running: Running, kind: str, value: Any) -> None:
        """A task's progress or log line, from the loop or from a task's thread."""
        if threading.get_ident() == self._loop_thread:
            self._queue_report(running, kind, value)
        else:
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._queue_report, running, kind, value)

    def _queue_report(self, running: Running, kind: str, value: Any) -> None:
        if kind == "progress" and running.reports and running.reports[-1][0] == "progress":
            running.reports[-1] = (kind, value)  # only the latest progress matters
        else:
            running.reports.append((kind, value))
        if running.reporter is None or running.reporter.done():
            running.reporter = asyncio.create_task(self._send_reports(running))

    async def _send_reports(self, running: Running) -> None:
        backend = self.app.backend
        lease = running.claim.lease
        while running.reports:
            kind, value = running.reports.pop(0)
            try:
                if kind == "progress":
                    await backend.progress(lease, value)
                else:
                    await backend.log(lease, value)
            except Exception as exc:
                log.warning("job %s: could not record %s: %s", lease.job_id, kind, exc)

    # -- one job ------------------------------------------------------------------------
    async def _run(self, running: Running) -> None:
        claim = running.claim
        job = claim.job
        task = self.app.tasks.get(job.task)
        settlement: Settlement | None
        try:
            if task is None:
                raise TaskError({"type": "UnknownTask", "traceback": None,
                                 "message": f"no task {job.task!r} in worker {self.worker_id}"},
                                True)
            if META in job.meta:
                await self._flow_inputs(running)
            encoded = _encode(await self._execute(task, running))
            if running.ctx.spawned:  # flows: it waits for its children, then runs again
                settlement = Settlement(job.id, claim.token, Outcome.WAIT_CHILDREN)
            else:
                settlement = Settlement(job.id, claim.token, Outcome.COMPLETED,
                                        result_json=encoded)
            self.processed += 1
        except asyncio.CancelledError:
            settlement = self._stopped(running)
        except Cancel as exc:
            settlement = Settlement(job.id, claim.token, Outcome.CANCELLED,
                                    error=self._entry(job.attempt, "Cancel", exc.reason, None))
        except RateLimited as exc:
            settlement = self._stopped(running) if running.stop_reason is not None \
                else _rate_limited(claim, exc)
        except Exception as exc:
            if running.stop_reason is not None:
                settlement = self._stopped(running)
            else:
                settlement = self._failure(claim, task, exc)
                self.failed += 1
        if running.reporter is not None:
            with contextlib.suppress(Exception):
                await running.reporter
        del self.running[job.id]
        self._finished(job.id, settlement)

    async def _flow_inputs(self, running: Running) -> None:
        """A flow's job: its dependencies' outcomes, and the result passed to it."""
        deps = await flow_runtime.dependencies(self.app.backend, running.claim.job)
        job = flow_runtime.with_result(running.claim.job, deps)
        running.claim = Claim(job, running.claim.token)
        running.ctx.job = job
        running.ctx.dependencies = deps

    async def _execute(self, task: Task[Any, Any], running: Running) -> Any:
        """One attempt, inside the app's middleware (see middleware.py)."""
        hooks = self.app.hooks
        if not hooks.around_async:
            return await self._attempt(task, running)

        async def attempt() -> Any:  # middleware see the result, not the child's JSON
            result = await self._attempt(task, running)
            return orjson.loads(result.json) if isinstance(result, Encoded) else result

        return await hooks.around_async_job(running.claim.job, attempt)

    async def _attempt(self, task: Task[Any, Any], running: Running) -> Any:
        job = running.claim.job
        timeout = job.timeout
        if task.executor == "process":  # its sync middleware run in the child
            return await self._processes.run(task, job, running.ctx, timeout)
        if task.executor == "thread":
            future = self._in_thread(functools.partial(self._body, task, running))
            return await (asyncio.wait_for(future, timeout) if timeout else future)
        if self.app.hooks.around_sync:
            return await self._async_body_in_thread(task, running)
        token = set_current(running.ctx)
        try:
            coro = task.run_inline(job.args, job.kwargs)
            return await (asyncio.wait_for(coro, timeout) if timeout else coro)
        finally:
            reset_current(token)

    def _body(self, task: Task[Any, Any], running: Running) -> Any:
        """A `def` task's body on this thread, inside the app's sync middleware."""
        job = running.claim.job
        token = set_current(running.ctx)
        try:
            def call() -> Any:
                args, kwargs = task.signature.decode(job.args, job.kwargs)
                return task.fn(*args, **kwargs)

            hooks = self.app.hooks
            return hooks.around_sync_job(job, call) if hooks.around_sync else call()
        finally:
            reset_current(token)

    def _in_thread(self, call: Callable[[], Any]) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().run_in_executor(self._threads, call)

    async def _async_body_in_thread(self, task: Task[Any, Any], running: Running) -> Any:
        """An ``async def`` body on the loop, with sync middleware around it in a pool
        thread that waits for it (so per-thread state such as a DB connection is theirs)."""
        loop = asyncio.get_running_loop()
        job = running.claim.job
        inner: list[concurrent.futures.Future[Any]] = []

        async def body() -> Any:
            token = set_current(running.ctx)
            try:
                coro = task.run_inline(job.args, job.kwargs)
                return await (asyncio.wait_for(coro, job.timeout) if job.timeout else coro)
            finally:
                reset_current(token)

        def wait_for_body() -> Any:
            inner.append(asyncio.run_coroutine_threadsafe(body(), loop))
            return inner[-1].result()

        try:
            return await self._in_thread(
                functools.partial(self.app.hooks.around_sync_job, job, wait_for_body))
        except asyncio.CancelledError:
            for future in inner:  # stop the body too, and let the middleware unwind
                future.cancel()
            raise

    # -- settlements --------------------------------------------------------------------
    def _stopped(self, running: Running) -> Settlement | None:
        claim = running.claim
        reason = running.stop_reason
        if reason == "cancel":
            return Settlement(claim.job.id, claim.token, Outcome.CANCELLED,
                              error=self._entry(claim.job.attempt, "Cancelled",
                                                "cancelled while running", None))
        if reason == "lost":
            return None  # another worker owns the job now; nothing to record
        return Settlement(claim.job.id, claim.token, Outcome.RELEASED)

    def _entry(self, attempt: int, kind: str, message: str,
               trace: str | None) -> dict[str, Any]:
        return {"attempt": attempt, "type": kind, "message": message, "traceback": trace,
                "worker": self.worker_id}

    def _failure(self, claim: Claim, task: Task[Any, Any] | None,
                 exc: Exception) -> Settlement:
        job = claim.job
        retryable = True
        delay: float | None = None
        if isinstance(exc, TaskError):
            entry = {**exc.entry, "attempt": job.attempt, "worker": self.worker_id}
            retryable = exc.retryable
        elif isinstance(exc, Retry):
            entry = self._entry(job.attempt, "Retry", exc.reason, None)
            delay = exc.delay
        elif isinstance(exc, TimeoutError):
            entry = self._entry(job.attempt, "Timeout",
                                f"did not finish within {job.timeout:g}s" if job.timeout
                                else str(exc) or "timed out", traceback.format_exc())
        else:
            entry = self._entry(job.attempt, _type_name(exc), str(exc), traceback.format_exc())
            retryable = not isinstance(exc, NonRetryableError) and not (
                task is not None and isinstance(exc, task.non_retryable))
        retry_in_ms: int | None = None
        if retryable and job.attempt < job.max_attempts:
            if delay is None:
                delay = backoff.delay_for(job.backoff, job.attempt)
            retry_in_ms = int(delay * 1000)
        elif retryable:
            entry["message"] += f" (attempt {job.attempt} of {job.max_attempts}: giving up)"
        if retry_in_ms is None:
            log.warning("job %s (%s) failed: %s: %s", job.id, job.task, entry["type"],
                        entry["message"])
        return Settlement(job.id, claim.token, Outcome.FAILED, error=entry,
                          retry_in_ms=retry_in_ms)


def _rate_limited(claim: Claim, exc: RateLimited) -> Settlement:
    """The downstream said "not now": the job goes back uncharged and the backend pauses
    its limiters (or the one named) for every worker."""
    job = claim.job
    log.info("job %s (%s) rate limited for %gs%s: %s", job.id, job.task, exc.retry_after,
             "" if exc.limiter is None else f" (limiter {exc.limiter})", exc.reason)
    return Settlement(job.id, claim.token, Outcome.RATE_LIMITED,
                      retry_in_ms=round(exc.retry_after * 1000), limiter=exc.limiter)


def _encode(result: Any) -> str:
    if isinstance(result, Encoded):
        return result.json
    try:
        return dumps(result)
    except TypeError as exc:
        raise TaskError({"type": "ResultNotJSON", "message": f"the result is not JSON: {exc}",
                         "traceback": None}, False) from None


def _no_report(kind: str, value: Any) -> None:
    """Placeholder until the job's reporter is bound."""


def _type_name(exc: BaseException) -> str:
    cls = type(exc)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"
