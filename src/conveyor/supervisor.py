"""The multi-process worker: one supervisor process keeps N worker processes running.

    conveyor worker myproject.jobs:app -p 4 --max-jobs-per-child 10000

The supervisor runs no jobs and opens no backend connection. It starts each worker
process with "spawn" (a fresh interpreter that finds the app again by ``MODULE:ATTR``,
see `conveyor.loading`) and then only waits for one of them to exit or for a signal:

- a worker process that crashes (non-zero exit, killed by a signal) is started again
  after a backoff that grows with consecutive crashes (0.5 s, 1 s, 2 s ... 30 s), with
  one log line saying which process, how it ended and when it comes back;
- a worker process recycles itself, with the worker's own graceful stop (no new claims,
  running jobs finish, the rest handed back), once it has finished `max_jobs` jobs or its
  resident memory passes `max_memory`; it exits 0 and the supervisor starts a fresh one
  at once;
- SIGTERM or SIGINT to the supervisor is forwarded (as SIGTERM) to every worker process,
  which stops gracefully; the supervisor exits 0 once all have. A second signal asks
  them to stop now (HARD_STOP), skipping the grace period, like a second signal to a
  single worker.

Worker processes ignore SIGINT, so a Ctrl-C in a terminal (sent to the whole process
group) reaches them once, through the supervisor; a SIGTERM sent to every process (a
container runtime, systemd's control group) is idempotent. A worker process whose
supervisor has gone stops gracefully too.

All worker processes of one supervisor register with the same `WorkerInfo.group`, so
``conveyor workers`` and the dashboard show them as one logical worker with a row per
process.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import multiprocessing
import multiprocessing.connection
import os
import re
import signal
import socket
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

from . import health, loops
from .backends.base import WorkerInfo
from .errors import ConfigurationError
from .jobs import Job
from .loading import load_app
from .logs import configure_logging, install_job_log
from .worker import Worker

if TYPE_CHECKING:
    from .app import Conveyor

log = logging.getLogger("conveyor.supervisor")
_MP = multiprocessing.get_context("spawn")
CANNOT_START = 3  # a worker process's exit code: restarting it would fail the same way
HARD_STOP = signal.SIGUSR1  # supervisor -> worker process: stop now, skip the grace period
WATCH_INTERVAL = 1.0  # how often an idle worker process looks at its memory and parent
STEADY_AFTER = 60.0  # a process that ran this long resets the crash backoff
MAX_BACKOFF = 30.0


@dataclasses.dataclass(frozen=True)
class ChildSpec:
    """Everything a worker process needs to build its worker (picklable: it crosses spawn)."""

    app_path: str
    url: str
    queues: tuple[str, ...]
    concurrency: int = 10
    lease: float = 30.0
    grace: float = 30.0
    process_workers: int | None = None
    log_level: str = "info"
    log_format: str = "text"
    store_job_logs: bool = False
    log_jobs: bool = False  # one INFO line per finished attempt (logs.JobLog)
    loop: str = "auto"
    max_jobs: int | None = None
    max_memory: int | None = None  # bytes of resident memory
    group: str = ""


def new_group_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def process_count(value: str) -> int:
    """``--processes``: a positive number, or "auto" (one per CPU)."""
    if value.strip().lower() == "auto":
        return os.cpu_count() or 1
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise ConfigurationError(f"bad --processes {value!r}: a number of at least 1, or auto")
    return count


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


def memory_size(value: str) -> int:
    """``500MB``, ``1.5GB``, ``800M``, ``123456`` (bytes) as bytes (K/M/G/T are 1024-based)."""
    match = _SIZE.match(value)
    if match is None:
        raise ConfigurationError(f"bad memory size {value!r}: use e.g. 500MB or 2GB")
    number, unit = float(match.group(1)), match.group(2).lower()
    size = int(number * 1024 ** " kmgt".index(unit or " "))
    if size < 1:
        raise ConfigurationError(f"bad memory size {value!r}: must be positive")
    return size


@dataclasses.dataclass
class _Slot:
    """One of the N places a worker process occupies, across restarts."""

    number: int
    process: Any = None  # multiprocessing's SpawnProcess
    started: float = 0.0
    crashes: int = 0  # in a row
    due: float | None = None  # when to start it again after a crash


class Supervisor:
    """Keeps `count` worker processes of `spec` running until told to stop."""

    def __init__(self, spec: ChildSpec, count: int,
                 health_socket: socket.socket | None = None) -> None:
        self.spec = spec
        self.health_socket = health_socket
        self.slots = [_Slot(n) for n in range(1, count + 1)]
        self.stopping = False
        self.signals = 0  # received
        self._forwarded = 0
        self.exit_code = 0
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> int:
        """Supervise until every worker process has stopped after SIGTERM/SIGINT; exit code."""
        previous = {sig: signal.signal(sig, self._on_signal)
                    for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            log.info("supervisor %s starting %d worker processes (group %s)", os.getpid(),
                     len(self.slots), self.spec.group)
            for slot in self.slots:
                self._start(slot)
            if self.health_socket is not None:
                health.serve_in_thread(self.health_socket, self.ready)
            while self.stopping is False or self._alive():
                self._wait()
                self._reap()
                self._start_due()
            log.info("supervisor %s: every worker process has stopped", os.getpid())
            return self.exit_code
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals += 1
        with contextlib.suppress(BlockingIOError):  # unread wake-ups wake the loop anyway
            os.write(self._wake_w, b"!")

    async def ready(self) -> str | None:
        """Readiness for the health endpoint (another thread: it only reads the slots)."""
        if self.stopping:
            return "stopping"
        up = sum(slot.process is not None for slot in self.slots)
        if up < len(self.slots):
            return f"{up} of {len(self.slots)} worker processes running"
        return None

    def _alive(self) -> list[_Slot]:
        return [s for s in self.slots if s.process is not None]

    def _wait(self) -> None:
        sentinels = [s.process.sentinel for s in self._alive()]
        dues = [s.due for s in self.slots if s.due is not None]
        timeout = None if not dues else max(0.0, min(dues) - time.monotonic())
        ready = multiprocessing.connection.wait([self._wake_r, *sentinels], timeout)
        if self._wake_r in ready:
            os.read(self._wake_r, 64)
        self._forward_signals()

    def _forward_signals(self) -> None:
        """The first signal: stop gracefully, no more restarts; any later one: stop now."""
        while self._forwarded < self.signals:
            self._forwarded += 1
            if self._forwarded == 1:
                log.info("supervisor %s stopping: %d worker process(es) finish their jobs",
                         os.getpid(), len(self._alive()))
                self.stopping = True
                for slot in self.slots:
                    slot.due = None
            sig = signal.SIGTERM if self._forwarded == 1 else HARD_STOP
            for slot in self._alive():
                _send(slot.process.pid, sig)

    # -- one process --------------------------------------------------------------------
    def _start(self, slot: _Slot) -> None:
        slot.due = None
        slot.process = _MP.Process(target=child_main, args=(self.spec, os.getpid()),
                                   name=f"conveyor-worker-{slot.number}", daemon=False)
        slot.process.start()
        slot.started = time.monotonic()

    def _start_due(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            if slot.due is not None and slot.due <= now and not self.stopping:
                self._start(slot)

    def _reap(self) -> None:
        for slot in self._alive():
            if slot.process.is_alive():
                continue
            code, pid = slot.process.exitcode, slot.process.pid
            slot.process.close()
            slot.process = None
            if not self.stopping:
                self._replace(slot, pid, code)

    def _replace(self, slot: _Slot, pid: int, code: int | None) -> None:
        lived = time.monotonic() - slot.started
        if code == CANNOT_START:
            log.error("worker process %d (pid %d) cannot start (its error is above): "
                      "stopping the others", slot.number, pid)
            self.exit_code = 1
            self.signals = max(self.signals, 1)
            self._forward_signals()
            return
        if code == 0:  # recycled (it said why), or stopped by someone else: a fresh one
            slot.crashes = 0
            log.info("worker process %d (pid %d) exited after %.1fs; starting a new one",
                     slot.number, pid, lived)
            self._start(slot)
            return
        slot.crashes = 1 if lived >= STEADY_AFTER else slot.crashes + 1
        delay = min(MAX_BACKOFF, 0.5 * 2 ** (slot.crashes - 1))
        log.error("worker process %d (pid %d) crashed (%s) after %.1fs; restarting it in "
                  "%.1fs (crash %d in a row)", slot.number, pid, _how(code), lived, delay,
                  slot.crashes)
        slot.due = time.monotonic() + delay


def _how(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _send(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it exited meanwhile; the loop reaps it
        os.kill(pid, sig)


# -- inside a worker process -------------------------------------------------------------
class GroupWorker(Worker):
    """A worker process of a supervised group: registers with the group's id, and stops
    gracefully (once, whatever asks) when told to or when a recycle limit is reached."""

    def __init__(self, app: Conveyor, spec: ChildSpec, parent: int) -> None:
        self.spec = spec
        self.parent = parent
        self.stop_requested = False
        self.finished = 0  # attempts this process has run to their end
        super().__init__(app, list(spec.queues), concurrency=spec.concurrency,
                         lease=spec.lease, grace=spec.grace,
                         process_workers=spec.process_workers)

    def info(self) -> WorkerInfo:
        return dataclasses.replace(super().info(), group=self.spec.group)

    def check_limits(self) -> None:
        memory = resident_memory() if self.spec.max_memory is not None else None
        reason = recycle_reason(self.finished, memory, self.spec,
                                os.getppid() != self.parent)
        if reason:
            self.stop_gracefully(reason)

    def stop_gracefully(self, reason: str) -> None:
        """A repeated request (SIGTERM from the supervisor and from a container runtime)
        must not turn into a hard stop: only the first one counts."""
        if self.stop_requested:
            return
        self.stop_requested = True
        log.info("worker process %d stopping: %s", os.getpid(), reason)
        self.stop()

    def stop_now(self) -> None:
        self.stop_requested = True
        self.stop(hard=True)

    async def around_job(self, job: Job, call_next: Callable[[], Awaitable[Any]]) -> Any:
        """Middleware (added when --max-jobs-per-child is set): count each finished
        attempt, so the process is recycled at its N-th job, not at the next look."""
        try:
            return await call_next()
        finally:
            self.finished += 1
            self.check_limits()

    async def watch(self) -> None:
        """Look at the limits now and then too: memory grows, and supervisors go, between
        jobs."""
        while not self.stop_requested:
            await asyncio.sleep(WATCH_INTERVAL)
            self.check_limits()


def child_main(spec: ChildSpec, parent: int) -> None:
    """A worker process: the app's worker, with the group's id and the recycle limits."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches us through the supervisor
    configure_logging(spec.log_level, spec.log_format, store_job_logs=spec.store_job_logs)
    try:
        loops.run(_run_child(spec, parent), spec.loop)
    except ConfigurationError as exc:  # the app, or a start hook: a new process would too
        log.error("worker process %d cannot start: %s", os.getpid(), exc)
        sys.exit(CANNOT_START)


async def _run_child(spec: ChildSpec, parent: int) -> None:
    app = load_app(spec.app_path)
    if app.url != spec.url:
        app.use(spec.url)
    if spec.log_jobs:
        install_job_log(app)
    log.info("event loop: %s", loops.running_name())
    worker = GroupWorker(app, spec, parent)
    if spec.max_jobs is not None:
        app.add_middleware(worker)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, worker.stop_gracefully, "SIGTERM")
    loop.add_signal_handler(HARD_STOP, worker.stop_now)
    watch = asyncio.ensure_future(worker.watch())
    try:
        await worker.run()
    finally:
        watch.cancel()
        await app.aclose()


def recycle_reason(finished: int, memory: int | None, spec: ChildSpec,
                   orphaned: bool) -> str | None:
    """Why this worker process should stop now (its supervisor starts a fresh one)."""
    if orphaned:
        return "its supervisor has gone"
    if spec.max_jobs is not None and finished >= spec.max_jobs:
        return f"recycling after {finished} jobs (--max-jobs-per-child {spec.max_jobs})"
    if spec.max_memory is not None and memory is not None and memory > spec.max_memory:
        return (f"recycling at {memory / 2**20:.0f} MB resident "
                f"(--max-memory-per-child {spec.max_memory / 2**20:.0f} MB)")
    return None


def resident_memory() -> int | None:
    """This process's resident memory in bytes (Linux; None where /proc is missing)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")

