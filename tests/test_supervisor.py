"""`conveyor worker -p N`: a supervisor keeping N real worker processes running on a real
SQLite file. Crashes are real (SIGKILL), recycling is checked against a ledger the jobs
write themselves, and the supervisor is stopped with a real SIGTERM.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor.supervisor import ChildSpec, memory_size, process_count, recycle_reason
from tests.test_cli import APP, PYTHONPATH, ROOT, as_json, enqueue, job_state, ok, url, wait_for

__all__ = ["url"]  # the fixture, used by name


class Supervised:
    """`python -m conveyor worker APP -p N ...` in the background, output kept in files."""

    def __init__(self, tmp_path: Path, url: str, *args: str,
                 env: dict[str, str] | None = None) -> None:
        self.err = tmp_path / "supervisor.err"
        with self.err.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "conveyor", "worker", APP, *args], cwd=ROOT,
                stdout=subprocess.DEVNULL, stderr=err,
                env={**os.environ, "CONVEYOR_URL": url, "PYTHONPATH": PYTHONPATH, **(env or {})})

    def members(self) -> list[dict[str, Any]]:
        """The registered, heartbeating worker processes of this supervisor's group."""
        group = f":{self.proc.pid}:"
        return [w for w in as_json("workers")
                if w.get("group") and group in w["group"] and not w["stale"]]

    def wait_members(self, count: int, exclude: frozenset[int] = frozenset()) -> list[int]:
        def ready() -> bool:
            pids = {w["pid"] for w in self.members()} - exclude
            return len(pids) >= count or self.proc.poll() is not None
        wait_for(ready, f"{count} worker processes", timeout=60)
        assert self.proc.poll() is None, self.err.read_text()
        return sorted({w["pid"] for w in self.members()} - exclude)

    def stop_by_itself(self) -> int:
        try:
            return self.proc.wait(timeout=60)
        finally:
            self.stop()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


@contextlib.contextmanager
def supervised(tmp_path: Path, url: str, *args: str) -> Iterator[Supervised]:
    process = Supervised(tmp_path, url, *args)
    try:
        yield process
    finally:
        process.stop()


@pytest.mark.slow
def test_a_killed_worker_process_is_restarted_under_the_same_group(url: str,
                                                                  tmp_path: Path) -> None:
    with supervised(tmp_path, url, "-p", "2", "--lease", "5") as sup:
        first = sup.wait_members(2)
        groups = {w["group"] for w in sup.members()}
        assert len(groups) == 1
        listed = ok("workers").stdout
        assert "(2 processes)" in listed and all(str(pid) in listed for pid in first)

        os.kill(first[0], signal.SIGKILL)
        replacement = sup.wait_members(1, exclude=frozenset(first))
        assert {w["group"] for w in sup.members()} == groups
        assert replacement and first[0] not in replacement
        assert "Killed by SIGKILL".lower() in sup.err.read_text().lower()
        assert "restarting it in" in sup.err.read_text()

        done = enqueue("add", "--arg", "x=1")  # the group still works
        wait_for(lambda: job_state(done) == "completed", "the job to run")
        assert sup.stop() == 0


@pytest.mark.slow
def test_recycling_after_n_jobs_loses_no_job_and_runs_none_twice(url: str,
                                                                tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    ids = {enqueue("record", "--arg", f"ledger={ledger}") for _ in range(30)}
    with supervised(tmp_path, url, "-p", "2", "-c", "2", "--max-jobs-per-child", "4") as sup:
        wait_for(lambda: as_json("jobs", "--state", "completed", "--limit", "100")["jobs"]
                 .__len__() == 30, "every job to complete", timeout=90)
        assert sup.stop() == 0
    runs = collections.Counter(line.split()[0] for line in ledger.read_text().splitlines())
    assert set(runs) == ids and set(runs.values()) == {1}  # each job ran exactly once
    pids = {line.split()[1] for line in ledger.read_text().splitlines()}
    assert len(pids) >= 4  # 30 jobs at most ~4 per process: processes were replaced
    assert "recycling after" in sup.err.read_text()
    assert "crashed" not in sup.err.read_text()


@pytest.mark.slow
def test_sigterm_to_the_supervisor_hands_running_jobs_back(url: str, tmp_path: Path) -> None:
    naps = [enqueue("nap", "--arg", "seconds=60") for _ in range(2)]
    with supervised(tmp_path, url, "-p", "2", "-c", "1", "--grace", "0.5") as sup:
        sup.wait_members(2)
        wait_for(lambda: all(job_state(j) == "active" for j in naps), "both naps to start")
        assert sup.stop(signal.SIGTERM) == 0
    for job_id in naps:
        job = as_json("job", job_id)
        assert job["state"] == "waiting" and job["errors"] == []  # handed back, not failed
    assert as_json("workers") == []  # every process unregistered on its way out
    assert "every worker process has stopped" in sup.err.read_text()


@pytest.mark.slow
def test_a_worker_process_that_cannot_start_stops_the_supervisor(url: str,
                                                                 tmp_path: Path) -> None:
    sup = Supervised(tmp_path, url, "-p", "2", env={"CLI_APP_REFUSE_START": "1"})
    assert sup.stop_by_itself() == 1
    said = sup.err.read_text()
    assert "cannot start: worker start hook" in said and "the database is down" in said
    assert "restarting it in" not in said  # no crash loop: another process would fail too


def test_recycle_reasons() -> None:
    spec = ChildSpec(app_path=APP, url="sqlite://", queues=("math",), max_jobs=10,
                     max_memory=memory_size("500MB"))
    assert recycle_reason(9, 100 * 2**20, spec, orphaned=False) is None
    assert "after 10 jobs" in (recycle_reason(10, None, spec, orphaned=False) or "")
    assert "501 MB" in (recycle_reason(0, 501 * 2**20, spec, orphaned=False) or "")
    assert "supervisor has gone" in (recycle_reason(0, None, spec, orphaned=True) or "")


def test_sizes_and_process_counts_parse() -> None:
    assert memory_size("500MB") == memory_size("500m") == 500 * 2**20
    assert memory_size("1.5GiB") == 3 * 2**29 and memory_size("4096") == 4096
    assert process_count("3") == 3 and process_count("auto") == (os.cpu_count() or 1)
