"""Worker behaviour inside one process: outcomes, retries, reports, timeouts, cancellation.

Each test runs a real worker (conveyor.testing.drain / Worker) on a real SQLite file.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from conveyor import Conveyor, JobFailedError, JobState, Worker
from conveyor.testing import adrain, drain
from tests import worker_app
from tests.helpers import ledger_counts, wait_until


def test_async_task_result_is_stored(app: Conveyor, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    job = worker_app.record.enqueue(str(ledger))
    assert drain(app, ["default"]) == 1
    assert job.result(timeout=5) == job.id
    assert ledger_counts(ledger) == {job.id: 1}


def test_failed_attempt_is_retried_with_backoff_and_keeps_its_error(app: Conveyor,
                                                                    tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    job = worker_app.flaky_once.enqueue(str(ledger))
    drain(app, ["default"])
    assert job.result(timeout=5) == "ok"
    assert ledger_counts(ledger)[job.id] == 2
    [error] = job.refresh().errors
    assert error["type"] == "ConnectionError" and error["message"] == "upstream 503"
    assert "Traceback" in error["traceback"] and error["attempt"] == 1


def test_attempts_exhausted_ends_in_failed_set_with_every_error(app: Conveyor) -> None:
    job = worker_app.always_fails.enqueue()
    drain(app, ["default"])
    with pytest.raises(JobFailedError, match="bad data"):
        job.result(timeout=5)
    final = job.refresh()
    assert final.state is JobState.FAILED and final.attempt == 2
    assert [e["attempt"] for e in final.errors] == [1, 2]
    assert "giving up" in final.errors[-1]["message"]


def test_non_retryable_error_fails_at_once(app: Conveyor) -> None:
    job = worker_app.fails_for_good.enqueue()
    drain(app, ["default"])
    final = job.refresh()
    assert final.state is JobState.FAILED and final.attempt == 1
    assert final.errors[0]["type"] == "conveyor.outcomes.NonRetryableError"


def test_retry_outcome_runs_again_after_its_delay(app: Conveyor, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    job = worker_app.asks_retry.enqueue(str(ledger))
    drain(app, ["default"])
    assert job.result(timeout=5) == "ready"
    assert job.refresh().errors[0]["type"] == "Retry"


def test_cancel_outcome_ends_cancelled(app: Conveyor) -> None:
    job = worker_app.cancels_itself.enqueue()
    drain(app, ["default"])
    final = job.refresh()
    assert final.state is JobState.CANCELLED
    assert final.errors[-1]["message"] == "nothing to do"


def test_progress_and_logs_are_recorded_before_completion(app: Conveyor) -> None:
    job = worker_app.reports.enqueue()
    drain(app, ["default"])
    final = job.refresh()
    assert final.state is JobState.COMPLETED and final.progress == 90
    assert [entry["message"] for entry in final.logs] == ["first step", "last step"]
    events = app.run_sync(app.backend.events, 0, 100, job.id)
    kinds = [e.kind for e in events]
    assert kinds.index("completed") > max(i for i, k in enumerate(kinds) if k == "log")


def test_timeout_fails_the_attempt(app: Conveyor) -> None:
    job = worker_app.too_slow.enqueue()
    drain(app, ["default"], timeout=10)
    final = job.refresh()
    assert final.state is JobState.FAILED
    assert final.errors[0]["type"] == "Timeout" and "0.3s" in final.errors[0]["message"]


def test_result_that_is_not_json_fails_clearly(app: Conveyor) -> None:
    job = worker_app.returns_object.enqueue()
    drain(app, ["default"])
    final = job.refresh()
    assert final.state is JobState.FAILED
    assert final.errors[0]["type"] == "ResultNotJSON"


def test_process_executor_runs_and_reports(app: Conveyor) -> None:
    job = worker_app.double.enqueue(21)
    drain(app, ["cpu"], timeout=60, process_workers=1)
    assert job.result(timeout=5) == 42
    assert job.refresh().progress == 50


def test_process_job_past_its_timeout_is_killed_and_the_worker_carries_on(
        app: Conveyor) -> None:
    stuck = worker_app.spin.enqueue(30.0)
    after = worker_app.double.enqueue(5)
    drain(app, ["cpu"], timeout=60, process_workers=1)
    final = stuck.refresh()
    assert final.state is JobState.FAILED and final.errors[0]["type"] == "Timeout"
    assert after.result(timeout=5) == 10


def test_delayed_job_runs_once_due(app: Conveyor, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    job = worker_app.record.options(delay=0.3).enqueue(str(ledger))
    assert job.state is JobState.DELAYED
    drain(app, ["default"])
    assert job.refresh().state is JobState.COMPLETED


def _run_worker_in_thread(app: Conveyor, queues: list[str], **options: object) -> tuple[
        Worker, threading.Thread]:
    worker = Worker(app, queues, **options)  # type: ignore[arg-type]
    thread = threading.Thread(target=lambda: asyncio.run(worker.run()), daemon=True)
    thread.start()
    return worker, thread


@pytest.mark.parametrize("task_name", ["slow", "slow_thread"])
def test_cancelling_a_running_job_stops_it(app: Conveyor, tmp_path: Path,
                                           task_name: str) -> None:
    ledger = tmp_path / "ledger"
    task = getattr(worker_app, task_name)
    job = task.enqueue(str(ledger), 30.0)
    worker, thread = _run_worker_in_thread(app, ["slow"], lease=1.0)
    try:
        wait_until(lambda: job.refresh().state is JobState.ACTIVE, what="job to start")
        job.cancel()
        wait_until(lambda: job.refresh().state is JobState.CANCELLED, what="cancelled")
    finally:
        worker.stop()
        thread.join(30)
    assert ledger_counts(ledger)[job.id] == 0  # it never ran to completion
    if task_name == "slow_thread":
        wait_until(lambda: ledger.exists() and "saw-cancel" in ledger.read_text(),
                   what="thread saw the flag")  # it may see it after the worker stopped


def test_cancelling_a_running_process_job_kills_it(app: Conveyor) -> None:
    job = worker_app.spin.options(timeout=60).enqueue(60.0)
    worker, thread = _run_worker_in_thread(app, ["cpu"], lease=1.0, process_workers=1)
    try:
        wait_until(lambda: job.refresh().state is JobState.ACTIVE, 30, "job to start")
        job.cancel()
        wait_until(lambda: job.refresh().state is JobState.CANCELLED, what="cancelled")
    finally:
        worker.stop()
        thread.join(30)
    assert worker._processes.killed == 1


def test_a_task_blocking_the_event_loop_keeps_its_lease(app: Conveyor, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    job = worker_app.hogs_the_loop.enqueue(str(ledger), 2.5)
    asyncio.run(adrain(app, ["slow"], lease=0.8, timeout=30))
    final = job.refresh()
    assert final.state is JobState.COMPLETED and final.stalls == 0
    assert ledger_counts(ledger)[job.id] == 1


def test_one_app_drained_from_two_event_loops_wakes_in_each(app: Conveyor,
                                                            tmp_path: Path) -> None:
    """The backend's wake-up listener must follow the app to a new event loop."""
    ledger = tmp_path / "ledger"
    worker_app.record.enqueue(str(ledger))
    drain(app, ["default"])

    async def woken_by_enqueue() -> bool:
        backend = app.backend
        await backend.wait_for_work(["default"], 0.01)  # (re)subscribe on this loop

        async def later() -> None:
            await asyncio.sleep(0.05)
            await worker_app.record.aenqueue(str(ledger))

        task = asyncio.create_task(later())
        started = asyncio.get_running_loop().time()
        await backend.wait_for_work(["default"], 10.0)
        await task
        return asyncio.get_running_loop().time() - started < 5.0

    assert asyncio.run(woken_by_enqueue())
    drain(app, ["default"])
    assert sum(ledger_counts(ledger).values()) == 2


def test_concurrency_is_bounded_per_worker(app: Conveyor) -> None:
    worker_app._in_flight.update(now=0, max=0)
    app.enqueue_many([worker_app.counts_concurrency.prepare() for _ in range(60)])
    assert drain(app, ["bounded"], concurrency=4) == 60
    assert worker_app._in_flight["max"] == 4


def test_worker_maintenance_applies_retention(app: Conveyor, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from conveyor import Retention

    monkeypatch.setattr(app, "retention", Retention(completed_max_count=3))
    ledger = tmp_path / "ledger"
    jobs = app.enqueue_many([worker_app.record.prepare(str(ledger)) for _ in range(10)])
    worker, thread = _run_worker_in_thread(app, ["default"], lease=1.0, prune_interval=0.1)
    try:
        def pruned() -> bool:
            [info] = [q for q in app.queues() if q.name == "default"]
            return info.counts[JobState.COMPLETED] == 3 and info.counts[JobState.WAITING] == 0
        wait_until(pruned, what="retention to prune down to 3 completed jobs")
    finally:
        worker.stop()
        thread.join(30)
    gone = [j for j in jobs if app.run_sync(app.backend.get, j.id) is None]
    assert len(gone) == 7
    assert all(app.run_sync(app.backend.tombstone, j.id) for j in gone)


async def test_async_api_enqueues_and_awaits_results(app: Conveyor, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    job = await worker_app.record.aenqueue(str(ledger))
    assert (await app.aget_job(job.id)).state is JobState.WAITING
    await adrain(app, ["default"])
    assert await job.aresult(timeout=5) == job.id
