"""The worker: claims jobs in batches, runs them, and records their outcomes.

One asyncio loop per process. The loop claims up to half its slots in one backend call
that also records the outcomes of the jobs that just finished ("settle previous + fetch
next"), so a busy worker makes one round trip per batch, not per job; under load two such
calls are in flight, so the backend and the worker do not wait for each other. When
there is nothing to claim, its claim waits in the backend (`fetch_when_ready`: on Redis,
behind a BLPOP) until work arrives, the next delayed job is due or the poll interval
passes: no busy polling.

``async def`` tasks run on the loop, ``def`` tasks in a thread pool, and
``executor="process"`` tasks in child processes with hard timeouts. Leases are renewed by
the keeper thread (see keeper.py).

Shutdown (SIGTERM/SIGINT, or `stop()`): stop claiming, let running jobs finish within
`grace` seconds, then hand the rest back (waiting again, attempt not charged). A second
signal skips the grace period.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import functools
import logging
import os
import signal
import socket
import threading
import traceback
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from .. import backoff
from ..backends.base import Claim, Fetched, LeaseStatus, Outcome, Settlement, WorkerInfo
from ..context import JobContext, reset_current, set_current
from ..errors import ConveyorError
from ..outcomes import Cancel, NonRetryableError, Retry
from ..serialization import dumps
from .keeper import Keeper
from .processes import Encoded, ProcessPool, TaskError
from .threads import DaemonThreadPool

if TYPE_CHECKING:
    from ..app import Conveyor
    from ..task import Task

log = logging.getLogger("conveyor.worker")
COMMAND_WAIT = 60.0  # a call in flight kicks the loop when it ends: this is only a backstop


@dataclasses.dataclass(slots=True)
class _Running:
    claim: Claim
    ctx: JobContext
    task: asyncio.Task[None] | None = None
    stop_reason: str | None = None  # "cancel" | "lost" | "shutdown"
    reports: list[tuple[str, Any]] = dataclasses.field(default_factory=list)
    reporter: asyncio.Task[None] | None = None


class Worker:
    def __init__(
        self,
        app: Conveyor,
        queues: Sequence[str] | None = None,
        *,
        concurrency: int = 10,
        lease: float = 30.0,
        grace: float = 30.0,
        heartbeat: float | None = None,
        poll_interval: float = 2.0,
        process_workers: int | None = None,
        maintenance: bool = True,
        prune_interval: float = 60.0,
        name: str | None = None,
    ) -> None:
        if concurrency < 1:
            raise ConveyorError("concurrency must be at least 1")
        if lease <= 0.2:
            raise ConveyorError("lease must be more than 0.2 seconds")
        self.app = app
        self.queues = list(queues or app.queue_names)
        self.concurrency = concurrency
        # At most half the slots per claim: while one batch's call is in flight the
        # previous batch runs, so the worker and the backend work at the same time.
        self._batch = max(1, (concurrency + 1) // 2)
        self.lease_ms = int(lease * 1000)
        self.grace = grace
        self.poll_interval = poll_interval
        self.id = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._running: dict[str, _Running] = {}
        self._settlements: list[Settlement] = []
        self._kick = asyncio.Event()
        self._changed = True  # a job finished, work arrived or we are stopping: look again
        self._stopping = False
        self._hard_stop = False
        self._threads = DaemonThreadPool(concurrency)
        self._processes = ProcessPool(process_workers or os.cpu_count() or 2)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._keeper = Keeper(
            app.url, self.info, self._on_lease_status, lease_ms=self.lease_ms,
            interval=heartbeat or min(lease / 3, 1.0), maintenance=maintenance,
            retention=app.retention, prune_every=prune_interval, duties=app.leader_duties,
        )
        self.processed = 0
        self.failed = 0

    def info(self) -> WorkerInfo:
        return WorkerInfo(id=self.id, host=socket.gethostname(), pid=os.getpid(),
                          queues=tuple(self.queues), concurrency=self.concurrency,
                          in_flight=len(self._running))

    # -- control ------------------------------------------------------------------------
    def stop(self, hard: bool = False) -> None:
        """Begin a graceful shutdown (thread-safe); hard=True skips the grace period."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._begin_stop, hard)

    def _begin_stop(self, hard: bool) -> None:
        if self._stopping and not hard:
            hard = True  # a second request means "now"
        if not self._stopping:
            log.info("worker %s stopping: no new jobs, %d running", self.id, len(self._running))
        self._stopping = True
        self._hard_stop = self._hard_stop or hard
        self._changed = True
        self._kick.set()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._begin_stop, False)

    # -- main loop ----------------------------------------------------------------------
    async def run(self, *, until_idle: bool = False) -> None:
        """Work until stopped (or, with until_idle, until no job of these queues is
        waiting, delayed or running)."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        await self.app.hooks.start_worker()  # WorkerStartError: this worker does not start
        await self.app.aopen()
        self._keeper.start()
        with contextlib.suppress(Exception):  # subscribe to wake-ups now (SQLite's socket)
            await self.app.backend.wait_for_work(self.queues, 0)
        log.info("worker %s consuming %s with concurrency %d", self.id, ",".join(self.queues),
                 self.concurrency)
        try:
            await self._work(until_idle)
            await self._shut_down()
        finally:
            self._keeper.stop()
            self._threads.shutdown(wait=False, cancel_futures=True)
            self._processes.close()
            for line in await self.app.hooks.stop_worker():
                log.error("%s", line)

    async def _work(self, until_idle: bool) -> None:
        """Claim and record in calls of at most half the slots. Under load a second call
        goes out while the first is in flight (its slots reserved), so the backend works
        on one batch while this process decodes and runs the other. When a call comes back
        short, an idle claim goes out (`fetch_when_ready`): the backend holds it until work
        arrives, the next delayed job is due or the poll interval passes. Meanwhile jobs
        that finish are recorded by an ordinary call beside it."""
        loop = asyncio.get_running_loop()
        # call -> (slots it claims for, outcomes it records, its interrupt if idle claim)
        calls: dict[asyncio.Task[Fetched], tuple[int, list[Settlement], asyncio.Event | None]]
        calls = {}
        reserved = 0  # slots promised to the claims of the calls in flight
        more = True  # the last answer filled its batch: more work may be waiting
        next_due: int | None = None
        failures = 0
        retry_at = 0.0
        while not self._stopping:
            self._kick.clear()  # anything from here on wakes the wait below
            for call in [c for c in calls if c.done()]:
                want, settle, _ = calls.pop(call)
                reserved -= want
                try:
                    fetched = call.result()
                except Exception as exc:  # an outage (any driver's error): keep going
                    self._settlements[:0] = settle  # keep outcomes until they are recorded
                    failures += 1
                    log.error("fetch failed (%s: %s); retrying", type(exc).__name__, exc)
                    retry_at = loop.time() + min(0.05 * 2**failures, 2.0)
                    more = False
                    continue
                failures = 0
                self._report_refused(settle, fetched.settled)
                for claim in fetched.claims:
                    self._start(claim)
                more = want > 0 and len(fetched.claims) == want
                next_due = fetched.next_due_in_ms
            idle_claims = [stop for _, _, stop in calls.values() if stop is not None]
            ordinary = len(calls) - len(idle_claims)
            if until_idle and ordinary == 0 and not more and not self._running \
                    and not self._settlements and next_due is None:
                if not idle_claims:
                    return
                idle_claims[0].set()  # drained: end the idle claim now, not at its timeout
            want = max(min(self.concurrency - len(self._running) - reserved, self._batch), 0)
            sent: asyncio.Task[Fetched] | None = None
            if loop.time() < retry_at:
                pass
            elif ((ordinary == 0 and (want > 0 or self._settlements) and (more or self._changed))
                    or (ordinary == 1 and not idle_claims and more and want > 0)):
                self._changed = False
                settle, self._settlements = self._settlements, []
                sent = asyncio.create_task(
                    self.app.backend.fetch(self.queues, want, self.id, self.lease_ms, settle))
                calls[sent] = (want, settle, None)
            elif not calls and want > 0:
                timeout = self.poll_interval
                if next_due is not None:
                    timeout = min(timeout, next_due / 1000)
                stop = asyncio.Event()
                sent = asyncio.create_task(self.app.backend.fetch_when_ready(
                    self.queues, want, self.id, self.lease_ms, timeout, stop))
                calls[sent] = (want, [], stop)
            if sent is not None:
                sent.add_done_callback(lambda _: self._kick.set())
                reserved += want
                continue
            timeout = self.poll_interval
            if calls:
                timeout = COMMAND_WAIT
            elif loop.time() < retry_at:
                timeout = retry_at - loop.time()
            elif next_due is not None:
                timeout = min(timeout, next_due / 1000)
            if not await wait_event(self._kick, timeout) and not calls:
                self._changed = True  # a quiet spell: look again (delayed jobs, safety poll)
        for _, _, interrupt in calls.values():
            if interrupt is not None:
                interrupt.set()  # an idle claim answers at once
        for call, (_, settle, _) in calls.items():  # stopping: claims run or are handed back
            try:
                fetched = await call
            except Exception:
                self._settlements[:0] = settle
                continue
            self._report_refused(settle, fetched.settled)
            for claim in fetched.claims:
                self._start(claim)

    def _report_refused(self, settle: Sequence[Settlement], done: Sequence[bool]) -> None:
        for s, ok in zip(settle, done, strict=True):
            self._keeper.drop(s.job_id)  # recorded or refused: the lease has done its work
            if not ok:
                log.warning("job %s: outcome %s refused: the lease is no longer held (another "
                            "worker took the job over, or a repeated call whose first reply "
                            "was lost had recorded it already)", s.job_id, s.outcome.value)

    async def _shut_down(self) -> None:
        if self._running and not self._hard_stop:
            log.info("waiting up to %gs for %d running job(s)", self.grace, len(self._running))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.grace
            while self._running and not self._hard_stop and loop.time() < deadline:
                self._kick.clear()
                await wait_event(self._kick, deadline - loop.time())
                await self._flush()
        for running in list(self._running.values()):
            running.stop_reason = running.stop_reason or "shutdown"
            running.ctx.cancel_requested = True  # cooperative `def` tasks stop early
            if running.task is not None:
                running.task.cancel()
        while self._running:
            await asyncio.sleep(0.01)
        await self._flush()

    async def _flush(self) -> None:
        if not self._settlements:
            return
        settle, self._settlements = self._settlements, []
        for attempt in range(50):
            try:
                done = await self.app.backend.settle(settle)
                self._report_refused(settle, done)
                return
            except Exception as exc:
                log.error("could not record %d outcome(s) (%s); retrying", len(settle), exc)
                await asyncio.sleep(min(0.1 * 2**attempt, 2.0))
        for s in settle:
            self._keeper.drop(s.job_id)
        log.error("gave up recording %d outcome(s); their leases will expire and the jobs "
                  "will be rescued", len(settle))

    # -- one job ------------------------------------------------------------------------
    def _start(self, claim: Claim) -> None:
        running = _Running(claim, JobContext(claim.job, report=_no_report))
        running.ctx.report = functools.partial(self._report, running)
        self._running[claim.job.id] = running
        self._keeper.hold(claim.lease)
        running.task = asyncio.create_task(self._run(running))

    def _report(self, running: _Running, kind: str, value: Any) -> None:
        """A task's progress or log line, from the loop or from a task's thread."""
        if threading.get_ident() == self._loop_thread:
            self._queue_report(running, kind, value)
        else:
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._queue_report, running, kind, value)

    def _queue_report(self, running: _Running, kind: str, value: Any) -> None:
        if kind == "progress" and running.reports and running.reports[-1][0] == "progress":
            running.reports[-1] = (kind, value)  # only the latest progress matters
        else:
            running.reports.append((kind, value))
        if running.reporter is None or running.reporter.done():
            running.reporter = asyncio.create_task(self._send_reports(running))

    async def _send_reports(self, running: _Running) -> None:
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

    async def _run(self, running: _Running) -> None:
        claim = running.claim
        job = claim.job
        task = self.app.tasks.get(job.task)
        settlement: Settlement | None
        try:
            if task is None:
                raise TaskError({"type": "UnknownTask", "traceback": None,
                                 "message": f"no task {job.task!r} in worker {self.id}"}, True)
            encoded = _encode(await self._execute(task, running))
            settlement = Settlement(job.id, claim.token, Outcome.COMPLETED, result_json=encoded)
            self.processed += 1
        except asyncio.CancelledError:
            settlement = self._stopped(running)
        except Cancel as exc:
            settlement = Settlement(job.id, claim.token, Outcome.CANCELLED,
                                    error=self._entry(job.attempt, "Cancel", exc.reason, None))
        except Exception as exc:
            if running.stop_reason is not None:
                settlement = self._stopped(running)
            else:
                settlement = self._failure(claim, task, exc)
                self.failed += 1
        if running.reporter is not None:
            with contextlib.suppress(Exception):
                await running.reporter
        del self._running[job.id]
        if settlement is None:
            self._keeper.drop(job.id)
        else:  # the keeper renews the lease until the outcome is recorded: a slow or
            # failing call must not let the job be rescued and run a second time
            self._settlements.append(settlement)
        self._changed = True
        self._kick.set()

    async def _execute(self, task: Task[Any, Any], running: _Running) -> Any:
        """One attempt, inside the app's middleware (see middleware.py)."""
        hooks = self.app.hooks
        if not hooks.around_async:
            return await self._attempt(task, running)

        async def attempt() -> Any:  # middleware see the result, not the child's JSON
            result = await self._attempt(task, running)
            return orjson.loads(result.json) if isinstance(result, Encoded) else result

        return await hooks.around_async_job(running.claim.job, attempt)

    async def _attempt(self, task: Task[Any, Any], running: _Running) -> Any:
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

    def _body(self, task: Task[Any, Any], running: _Running) -> Any:
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

    async def _async_body_in_thread(self, task: Task[Any, Any], running: _Running) -> Any:
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

    def _stopped(self, running: _Running) -> Settlement | None:
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
                "worker": self.id}

    def _failure(self, claim: Claim, task: Task[Any, Any] | None,
                 exc: Exception) -> Settlement:
        job = claim.job
        retryable = True
        delay: float | None = None
        if isinstance(exc, TaskError):
            entry = {**exc.entry, "attempt": job.attempt, "worker": self.id}
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

    # -- lease news from the keeper thread ----------------------------------------------
    def _on_lease_status(self, job_id: str, status: LeaseStatus) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._apply_lease_status, job_id, status)

    def _apply_lease_status(self, job_id: str, status: LeaseStatus) -> None:
        running = self._running.get(job_id)
        if running is None or running.stop_reason is not None:
            return
        if status is LeaseStatus.LOST:
            log.warning("job %s: lease lost; stopping it here", job_id)
            running.stop_reason = "lost"
        else:
            log.info("job %s: cancel requested", job_id)
            running.stop_reason = "cancel"
        running.ctx.cancel_requested = True
        if running.task is not None:
            running.task.cancel()


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait for `event` at most `timeout` seconds; whether it was set (asyncio.timeout
    never swallows a cancellation of the caller, unlike wait_for on Python 3.11)."""
    if event.is_set():
        return True
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(timeout, 0)):
            await event.wait()
    return event.is_set()


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
