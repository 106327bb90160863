"""Helpers shared by every benchmark script: child processes that are always cleaned up,
per-process CPU and memory from /proc, and percentiles.

Standard library only: the Huey peer imports this from its own virtualenv.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_STARTED = time.monotonic()
_PR_SET_PDEATHSIG = 1


def cpu_seconds(pid: int) -> float:
    """CPU seconds used by one process (all its live threads) so far.

    Nanosecond-precise from each thread's schedstat where the kernel has it (so a tenth
    of a percent over a few seconds is visible); else utime + stime in clock ticks.
    """
    total = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                total += int((task / "schedstat").read_text().split()[0])
        return total / 1e9
    except (FileNotFoundError, IndexError, ValueError):
        return _stat_cpu_seconds(pid)


def _stat_cpu_seconds(pid: int) -> float:
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()
    # fields[0] is field 3 (state) of proc(5); utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def rss_mib(pid: int) -> float:
    """Resident set size of one process in MiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def idle_cpu_percent(pid: int, seconds: float) -> float:
    """CPU used by `pid` over `seconds` of wall time, as % of one core."""
    before, start = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    used, elapsed = cpu_seconds(pid) - before, time.monotonic() - start
    return 100.0 * used / elapsed


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(p / 100 * len(ordered))))
    return ordered[rank - 1]


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.05,
               what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it if the benchmark process dies, even by SIGKILL
    (Linux prctl PR_SET_PDEATHSIG), so no worker outlives the run that started it."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so `finally` blocks stop the children we started."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


class Child:
    """A child process in its own process group, ended (TERM, then KILL) on exit."""

    def __init__(self, argv: Sequence[str], *, env: dict[str, str] | None = None,
                 log_path: Path | None = None, cwd: Path | None = None) -> None:
        self._log = open(log_path, "wb") if log_path else None  # noqa: SIM115
        self.proc = subprocess.Popen(
            list(argv), env={**os.environ, **(env or {})}, cwd=cwd, stdin=subprocess.DEVNULL,
            stdout=self._log or subprocess.DEVNULL, stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self.log_path = log_path

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def check_alive(self) -> None:
        if not self.alive():
            tail = self.log_path.read_text()[-2000:] if self.log_path else ""
            raise RuntimeError(f"child {self.proc.args!r} exited with {self.proc.returncode}:"
                               f"\n{tail}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        """Signal the child's whole process group; escalate to SIGKILL after `timeout`."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        else:
            # the leader is gone; make sure nothing it started lingers
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
        return self.proc.returncode


def note(message: str) -> None:
    """Progress lines go to stderr so stdout stays machine-readable."""
    print(f"[{time.monotonic() - _STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)
