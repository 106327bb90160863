"""The worker's life: start, run, stop and shut down; the claimer and executor do the work.

One asyncio loop per process. The claimer (claimer.py) claims jobs in batches and records
their outcomes in the same backend calls ("settle previous + fetch next"), two calls in
flight under load; when there is nothing to claim, its claim waits in the backend
(`fetch_when_ready`: on Redis, behind a BLPOP) until work arrives, the next delayed job is
due or the poll interval passes: no busy polling. The executor (executor.py) turns each
claimed job into one settlement, inside the app's middleware: ``async def`` tasks on the
loop, ``def`` tasks in a thread pool, ``executor="process"`` tasks in child processes with
hard timeouts. Leases are renewed by the keeper thread (see keeper.py) until each job's
outcome is recorded.

Shutdown (SIGTERM/SIGINT, or `stop()`): stop claiming, let running jobs finish within
`grace` seconds, then hand the rest back (waiting again, attempt not charged). A second
signal skips the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..backends.base import Claim, LeaseStatus, Settlement, WorkerInfo
from ..errors import ConveyorError
from .claimer import COMMAND_WAIT, Claimer, wait_event
from .executor import Executor, Running
from .keeper import Keeper
from .processes import ProcessPool
from .threads import DaemonThreadPool

if TYPE_CHECKING:
    from ..app import Conveyor

__all__ = ["COMMAND_WAIT", "Worker", "wait_event"]

log = logging.getLogger("conveyor.worker")


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
        self.lease_ms = int(lease * 1000)
        self.grace = grace
        self.poll_interval = poll_interval
        self.id = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._hard_stop = False
        self._threads = DaemonThreadPool(concurrency)
        self._processes = ProcessPool(process_workers or os.cpu_count() or 2)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor = Executor(app, self.id, self._threads, self._processes, self._finished)
        self._running: dict[str, Running] = self._executor.running
        self._claimer = Claimer(app, self.queues, self.id, concurrency=concurrency,
                                lease_ms=self.lease_ms, poll_interval=poll_interval,
                                running=self._running, start=self._start,
                                recorded=self._report_refused)
        self._keeper = Keeper(
            app.url, self.info, self._on_lease_status, lease_ms=self.lease_ms,
            interval=heartbeat or min(lease / 3, 1.0), maintenance=maintenance,
            retention=app.retention, prune_every=prune_interval, duties=app.leader_duties,
        )

    @property
    def processed(self) -> int:
        """Jobs completed by this worker."""
        return self._executor.processed

    @property
    def failed(self) -> int:
        """Attempts that failed in this worker (retried or not)."""
        return self._executor.failed

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
        stopping = self._claimer.stopping
        if stopping and not hard:
            hard = True  # a second request means "now"
        if not stopping:
            log.info("worker %s stopping: no new jobs, %d running", self.id, len(self._running))
        self._hard_stop = self._hard_stop or hard
        self._claimer.stop()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._begin_stop, False)

    # -- life ---------------------------------------------------------------------------
    async def run(self, *, until_idle: bool = False) -> None:
        """Work until stopped (or, with until_idle, until no job of these queues is
        waiting, delayed or running)."""
        self._loop = asyncio.get_running_loop()
        self._executor.bind(self._loop)
        await self.app.hooks.start_worker()  # WorkerStartError: this worker does not start
        await self.app.aopen()
        self._keeper.start()
        with contextlib.suppress(Exception):  # subscribe to wake-ups now (SQLite's socket)
            await self.app.backend.wait_for_work(self.queues, 0)
        log.info("worker %s consuming %s with concurrency %d", self.id, ",".join(self.queues),
                 self.concurrency)
        try:
            await self._claimer.run(until_idle)
            await self._shut_down()
        finally:
            self._keeper.stop()
            self._threads.shutdown(wait=False, cancel_futures=True)
            self._processes.close()
            for line in await self.app.hooks.stop_worker():
                log.error("%s", line)

    def _start(self, claim: Claim) -> None:
        self._keeper.hold(claim.lease)
        self._executor.start(claim)

    def _finished(self, job_id: str, settlement: Settlement | None) -> None:
        if settlement is None:
            self._keeper.drop(job_id)
        # else the keeper renews the lease until the outcome is recorded: a slow or
        # failing call must not let the job be rescued and run a second time
        self._claimer.settle(settlement)

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
            kick = self._claimer.kick
            while self._running and not self._hard_stop and loop.time() < deadline:
                kick.clear()
                await wait_event(kick, deadline - loop.time())
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
        settle = self._claimer.take_settlements()
        if not settle:
            return
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
