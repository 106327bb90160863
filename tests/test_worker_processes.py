"""Faults with real `conveyor worker` processes sharing one SQLite file: kill -9, SIGTERM,
SIGSTOP past the lease (fencing), and many jobs through several workers."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import Conveyor, JobState
from tests import worker_app
from tests.helpers import WorkerProcess, ledger_counts, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def url(app: Conveyor) -> str:
    return app.url


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for w in started:
        w.stop(timeout=10)


def start(workers: list[WorkerProcess], url: str, *args: str) -> WorkerProcess:
    w = WorkerProcess(url, *args)
    workers.append(w)
    return w


def the_app() -> Conveyor:
    return worker_app.app


def test_job_of_a_killed_worker_runs_exactly_once_more(url: str, tmp_path: Path,
                                                       workers: list[WorkerProcess]) -> None:
    ledger = tmp_path / "ledger"
    job = worker_app.slow.enqueue(str(ledger), 2.0)
    victim = start(workers, url, "-q", "slow", "--lease", "1")
    wait_until(lambda: job.refresh().state is JobState.ACTIVE, what="job to start")
    victim.kill()  # SIGKILL mid-job: no chance to hand it back
    assert ledger_counts(ledger)[job.id] == 0
    start(workers, url, "-q", "slow", "--lease", "1")
    wait_until(lambda: job.refresh().state is JobState.COMPLETED, 30, "rescue and rerun")
    final = job.refresh()
    assert ledger_counts(ledger)[job.id] == 1
    assert final.stalls == 1 and final.attempt == 1
    assert final.errors[0]["type"] == "Stalled"


def test_sigterm_lets_a_short_job_finish(url: str, tmp_path: Path,
                                         workers: list[WorkerProcess]) -> None:
    ledger = tmp_path / "ledger"
    job = worker_app.slow.enqueue(str(ledger), 1.0)
    w = start(workers, url, "-q", "slow", "--grace", "20")
    wait_until(lambda: job.refresh().state is JobState.ACTIVE, what="job to start")
    w.signal(signal.SIGTERM)
    assert w.proc.wait(30) == 0
    assert job.refresh().state is JobState.COMPLETED
    assert ledger_counts(ledger)[job.id] == 1


def test_sigterm_hands_back_a_long_job_without_charging_an_attempt(
        url: str, tmp_path: Path, workers: list[WorkerProcess]) -> None:
    ledger = tmp_path / "ledger"
    job = worker_app.slow.enqueue(str(ledger), 3.0)
    w = start(workers, url, "-q", "slow", "--grace", "0.5")
    wait_until(lambda: job.refresh().state is JobState.ACTIVE, what="job to start")
    w.signal(signal.SIGTERM)
    assert w.proc.wait(30) == 0
    handed_back = job.refresh()
    assert handed_back.state is JobState.WAITING and handed_back.attempt == 0
    assert ledger_counts(ledger)[job.id] == 0
    start(workers, url, "-q", "slow")
    wait_until(lambda: job.refresh().state is JobState.COMPLETED, 30, "second worker")
    assert ledger_counts(ledger)[job.id] == 1


def test_a_frozen_worker_past_its_lease_cannot_settle_the_job(
        url: str, tmp_path: Path, workers: list[WorkerProcess]) -> None:
    """Fencing: after SIGSTOP the lease expires and another worker takes the job; when the
    first one wakes up, its outcome is refused."""
    ledger = tmp_path / "ledger"
    job = worker_app.slow.enqueue(str(ledger), 1.5)
    frozen = start(workers, url, "-q", "slow", "--lease", "0.6")
    wait_until(lambda: job.refresh().state is JobState.ACTIVE, what="job to start")
    first_owner = job.refresh().worker
    frozen.signal(signal.SIGSTOP)
    try:
        start(workers, url, "-q", "slow", "--lease", "0.6")
        wait_until(lambda: job.refresh().state is JobState.COMPLETED, 30, "takeover")
        assert job.refresh().worker != first_owner
    finally:
        frozen.signal(signal.SIGCONT)
    wait_until(lambda: len(ledger.read_text().splitlines()) == 2, 30, "frozen worker's run")
    final = job.refresh()
    assert final.state is JobState.COMPLETED and final.worker != first_owner
    assert final.stalls == 1
    out = frozen.stop()
    assert "refused: the lease is no longer held" in out or "lease lost" in out


def test_many_jobs_through_four_workers_run_once_each(url: str, tmp_path: Path,
                                                      workers: list[WorkerProcess]) -> None:
    ledger = tmp_path / "ledger"
    total = 10_000
    handles = the_app().enqueue_many([worker_app.record.prepare(str(ledger)) for _ in
                                  range(total)])
    for _ in range(4):
        start(workers, url, "-q", "default", "-c", "50")

    def all_done() -> bool:
        [info] = [q for q in the_app().queues() if q.name == "default"]
        return info.counts[JobState.COMPLETED] == total

    wait_until(all_done, 120, "10,000 jobs")
    counts = ledger_counts(ledger)
    assert len(counts) == total and set(counts.values()) == {1}
    assert set(counts) == {h.id for h in handles}
    pids = {line.split()[2] for line in ledger.read_text().splitlines()}
    assert len(pids) >= 2  # the work was shared
    assert all(int(p) != os.getpid() for p in pids)


def test_worker_exits_after_handing_back_a_stuck_thread_task(
        url: str, workers: list[WorkerProcess]) -> None:
    job = worker_app.stuck_thread.enqueue(600.0)
    w = start(workers, url, "-q", "slow", "--grace", "0.5")
    wait_until(lambda: job.refresh().state is JobState.ACTIVE, what="job to start")
    w.signal(signal.SIGTERM)
    assert w.proc.wait(20) == 0  # did not wait for the 600 s sleep
    handed_back = job.refresh()
    assert handed_back.state is JobState.WAITING and handed_back.attempt == 0
