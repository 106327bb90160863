"""The process executor: CPU-bound tasks in child processes with hard timeouts.

Each child runs one job at a time and talks to the worker over a pipe: the job goes
down; progress and log reports and then one outcome come back. A job that outlives its
timeout, or is cancelled, has its child killed (SIGKILL) and a fresh child takes the slot;
the worker's event loop never waits on a child.

Children are started with "spawn", so they inherit no threads or connections, and find
the task by importing the module that defines it. A script without a
``if __name__ == "__main__":`` guard would re-run in each child: reentry.py stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
import signal
import sys
import time
import traceback
from typing import Any

from ..context import JobContext, reset_current, set_current
from ..jobs import Job
from ..loading import import_object
from ..logs import configure_from_env
from ..outcomes import Cancel, NonRetryableError, RateLimited, Retry
from ..reentry import MESSAGE, REENTERED
from ..serialization import dumps

_MP = multiprocessing.get_context("spawn")
STOP_WAIT = 5.0  # how long children get to run their stop hooks when the worker stops


class TaskError(Exception):
    """An error raised by a task in a child process, carried back as its error entry."""

    def __init__(self, entry: dict[str, Any], retryable: bool) -> None:
        super().__init__(f"{entry.get('type')}: {entry.get('message')}")
        self.entry = entry
        self.retryable = retryable


def _child_main(conn: multiprocessing.connection.Connection) -> None:
    """The child's loop: run jobs until told to stop (None) or killed. The first job of an
    app runs the app's worker start hooks here; a clean exit runs its stop hooks."""
    started: list[Any] = []  # the apps whose start hooks ran in this child
    configure_from_env()  # log like the worker that started us (job fields included)
    # A terminal's Ctrl-C reaches the whole process group: the worker stops us itself
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        while True:
            try:
                message = conn.recv()
            except EOFError:
                return
            if message is None:
                return
            module, qualname, job, dependencies = message
            task = import_object(module, qualname)
            if task.app not in started:
                try:
                    task.app.hooks.start_worker_blocking()
                except Exception as exc:
                    conn.send(("start_failed", {"type": type(exc).__qualname__,
                                                "message": str(exc),
                                                "traceback": traceback.format_exc()}))
                    return  # a child whose start hook failed takes no job; a new one comes
                started.append(task.app)
            conn.send(_run_one(conn, task, job, dependencies))
    finally:
        for app in started:
            for line in app.hooks.stop_worker_blocking():
                print(line, file=sys.stderr)


def _run_one(conn: multiprocessing.connection.Connection, task: Any, job: Job,
             dependencies: dict[str, dict[str, Any]] | None) -> tuple[Any, ...]:
    """One attempt in this child, inside the app's sync middleware: the message to send.
    `dependencies`: a flow's job's, read by the parent process (conveyor/flows)."""
    ctx = JobContext(job=job, report=lambda kind, value: conn.send(("report", kind, value)),
                     dependencies=dependencies)
    token = set_current(ctx)

    def body() -> Any:
        args, kwargs = task.signature.decode(job.args, job.kwargs)
        result = task.fn(*args, **kwargs)
        return asyncio.run(result) if asyncio.iscoroutine(result) else result

    try:
        hooks = task.app.hooks
        result = hooks.around_sync_job(job, body) if hooks.around_sync else body()
        try:
            return ("ok", dumps(result))
        except TypeError as exc:
            return ("error", {"type": "ResultNotJSON", "traceback": None,
                              "message": f"the result is not JSON: {exc}"}, False)
    except Retry as exc:
        return ("retry", exc.delay, exc.reason)
    except Cancel as exc:
        return ("cancel", exc.reason)
    except RateLimited as exc:
        return ("rate_limited", exc.retry_after, exc.limiter, exc.reason)
    except BaseException as exc:
        entry = {"type": type(exc).__qualname__, "message": str(exc),
                 "traceback": traceback.format_exc()}
        retryable = not isinstance(exc, NonRetryableError | tuple(task.non_retryable))
        return ("error", entry, retryable)
    finally:
        reset_current(token)


class _Child:
    def __init__(self) -> None:
        self.conn, child_end = _MP.Pipe()
        self.process = _MP.Process(target=_child_main, args=(child_end,), daemon=True,
                                   name="conveyor-process-executor")
        self.process.start()
        child_end.close()

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.process.kill()
            self.process.join(timeout=5)
        self.conn.close()


class ProcessPool:
    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._idle: asyncio.Queue[_Child] | None = None
        self._all: set[_Child] = set()
        self.killed = 0

    def _spawn(self) -> _Child:
        child = _Child()
        self._all.add(child)
        return child

    async def _take(self) -> _Child:
        if self._idle is None:
            self._idle = asyncio.Queue()
            loop = asyncio.get_running_loop()
            children = await loop.run_in_executor(None, lambda: [_Child()
                                                                 for _ in range(self.size)])
            for child in children:
                self._all.add(child)
                self._idle.put_nowait(child)
        return await self._idle.get()

    async def run(self, task: Any, job: Job, ctx: JobContext, timeout: float | None) -> Any:
        child = await self._take()
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[tuple[Any, ...]] = loop.create_future()

        def readable() -> None:
            try:
                while child.conn.poll():
                    message = child.conn.recv()
                    if message[0] == "report":
                        ctx.report(message[1], message[2])
                    elif not outcome.done():
                        outcome.set_result(message)
            except (EOFError, OSError):
                if not outcome.done():
                    code = child.process.exitcode
                    outcome.set_result(("died", code))

        fn = task.fn
        child.conn.send((fn.__module__, fn.__qualname__, job, ctx.dependencies))
        loop.add_reader(child.conn.fileno(), readable)
        healthy = False
        try:
            message = await asyncio.wait_for(outcome, timeout) if timeout else await outcome
            healthy = message[0] not in ("died", "start_failed")
        finally:
            loop.remove_reader(child.conn.fileno())
            if healthy:
                assert self._idle is not None
                self._idle.put_nowait(child)
            else:  # timed out, cancelled or crashed: the child goes, a fresh one comes
                self.killed += 1
                self._all.discard(child)
                if outcome.done():  # it closed its pipe: it is exiting, let it say how
                    await loop.run_in_executor(None, child.process.join, 1.0)
                await loop.run_in_executor(None, child.kill)
                assert self._idle is not None
                self._idle.put_nowait(await loop.run_in_executor(None, self._spawn))
        if message[0] == "died":  # its exit code, now that it was reaped
            message = ("died", child.process.exitcode)
        return _answer(message)

    def close(self) -> None:
        """Ask every child to exit (running its app's stop hooks), then make sure."""
        children = list(self._all)
        for child in children:
            with contextlib.suppress(Exception):
                child.conn.send(None)
        deadline = time.monotonic() + STOP_WAIT
        for child in children:
            child.process.join(timeout=max(deadline - time.monotonic(), 0))
            child.kill()
        self._all.clear()


def _answer(message: tuple[Any, ...]) -> Any:
    """A child's last message as the job's outcome: a result, or the exception to raise."""
    kind = message[0]
    if kind == "ok":
        return Encoded(message[1])
    if kind == "retry":
        raise Retry(message[1], message[2])
    if kind == "cancel":
        raise Cancel(message[1])
    if kind == "rate_limited":
        raise RateLimited(message[1], message[2], message[3])
    if kind == "error":
        raise TaskError(message[1], message[2])
    if kind == "start_failed":  # retryable: the next attempt gets a fresh child
        raise TaskError(message[1], True)
    if message[1] == REENTERED:  # the script re-ran in the child: a new one would too
        raise TaskError({"type": "ConfigurationError", "message": MESSAGE,
                         "traceback": None}, False)
    raise TaskError({"type": "ProcessDied",
                     "message": f"the executor process died (exit code {message[1]})",
                     "traceback": None}, True)


class Encoded:
    """A result the child already encoded as JSON."""

    __slots__ = ("json",)

    def __init__(self, json: str) -> None:
        self.json = json
