"""Shared test helpers: worker processes, ledgers, polling."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0,
               what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class SwallowingCall:
    """Stands in for a backend call inside which a cancellation is lost, as in redis-py
    8.1's asyncio client (about 1 in 3 cancellations of a task looping over list_jobs).

    The first call (from the task named `task_name`, if given) waits until cancelled,
    swallows that cancellation and goes on for `retry` seconds more (as for a command the
    client sends again; a second cancellation ends it there), then answers like `real`.
    Every other call is `real`'s. `entered` is set once the swallowing call waits.
    """

    def __init__(self, real: Callable[..., Awaitable[Any]], task_name: str | None = None,
                 retry: float = 3600.0) -> None:
        self.real = real
        self.task_name = task_name
        self.retry = retry
        self.entered = asyncio.Event()
        self.swallowed = False

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        task = asyncio.current_task()
        if not self.entered.is_set() and task is not None and (
                self.task_name is None or task.get_name() == self.task_name):
            self.entered.set()
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                self.swallowed = True
            await asyncio.sleep(self.retry)
        return await self.real(*args, **kwargs)


def ledger_counts(path: Path) -> Counter[str]:
    if not path.exists():
        return Counter()
    return Counter(line.split()[0] for line in path.read_text().splitlines()
                   if line and not line.startswith("saw-"))


class WorkerProcess:
    """A real `conveyor worker` process on the test's database."""

    def __init__(self, url: str, *args: str, app: str = "tests.worker_app:app") -> None:
        # this tree's conveyor (a worktree's src), not only the installed one
        path = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
        env = {**os.environ, "CONVEYOR_URL": url, "PYTHONPATH": path}
        # A file, not a pipe: a worker logs a line per job, and a pipe nobody reads until
        # stop() fills up and blocks it.
        self._output = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed by stop())
        self._said = ""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "conveyor", "worker", app, *args],
            env=env, cwd=ROOT, stdout=self._output, stderr=subprocess.STDOUT, text=True,
        )

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 30.0) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if not self._output.closed:  # stop() may come twice (the test, then its fixture)
            self._output.seek(0)
            self._said = self._output.read()
            self._output.close()
        return self._said
