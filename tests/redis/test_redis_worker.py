"""The whole system on Redis: the app's sync API (a synchronous client on the caller's
thread), real
workers with their keeper thread, worker processes killed mid-job, and a Redis restart
under a running worker."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import Conveyor, JobState, Worker
from conveyor.testing import adrain, drain
from tests import worker_app
from tests.helpers import WorkerProcess, ledger_counts, wait_until
from tests.redis_server import RedisServer, unique_url


def _point(monkeypatch: pytest.MonkeyPatch, url: str) -> Conveyor:
    monkeypatch.setenv("CONVEYOR_URL", url)
    worker_app.app.use(url)
    return worker_app.app


@pytest.fixture
def app(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Conveyor]:
    """tests/worker_app.py on a store of its own (a key prefix) on the shared server."""
    yield _point(monkeypatch, unique_url(redis_server))
    worker_app.app.close()


def _worker_thread(app: Conveyor, queues: list[str], **options: object) -> tuple[
        Worker, threading.Thread]:
    worker = Worker(app, queues, **options)  # type: ignore[arg-type]
    thread = threading.Thread(target=lambda: asyncio.run(worker.run()), daemon=True)
    thread.start()
    return worker, thread


def test_sync_api_enqueues_reads_and_a_worker_runs_the_job(app: Conveyor,
                                                           tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    job = worker_app.record.enqueue(str(ledger))
    assert app.get_job(job.id).state is JobState.WAITING
    assert drain(app, ["default"]) == 1
    assert job.result(timeout=5) == job.id
    assert ledger_counts(ledger) == {job.id: 1}
    [info] = [q for q in app.queues() if q.name == "default"]
    assert info.counts[JobState.COMPLETED] == 1


def test_the_sync_api_runs_on_the_callers_threads_without_an_event_loop(
        app: Conveyor, tmp_path: Path) -> None:
    ledger = str(tmp_path / "ledger")
    handles: list[list[str]] = [[] for _ in range(8)]

    def produce(mine: list[str]) -> None:
        for _ in range(25):
            mine.append(worker_app.record.enqueue(ledger).id)

    threads = [threading.Thread(target=produce, args=(mine,)) for mine in handles]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = {job_id for mine in handles for job_id in mine}
    assert len(ids) == 200
    assert all(app.get_job(job_id).state is JobState.WAITING for job_id in list(ids)[:20])
    assert not [t.name for t in threading.enumerate() if t.name == "conveyor-portal"]
    [info] = [q for q in app.queues() if q.name == "default"]
    assert info.counts[JobState.WAITING] == 200


def test_the_same_app_works_from_one_event_loop_after_another(app: Conveyor,
                                                              tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    worker_app.record.enqueue(str(ledger))
    drain(app, ["default"])

    async def woken_by_enqueue() -> float:
        await app.backend.wait_for_work(["default"], 0.01)
        started = time.monotonic()

        async def later() -> None:
            await asyncio.sleep(0.05)
            await worker_app.record.aenqueue(str(ledger))

        task = asyncio.create_task(later())
        await app.backend.wait_for_work(["default"], 10.0)
        await task
        return time.monotonic() - started

    assert asyncio.run(woken_by_enqueue()) < 2.0
    drain(app, ["default"])
    assert sum(ledger_counts(ledger).values()) == 2


def test_an_idle_worker_stops_at_once_and_picks_up_work_without_polling(
        app: Conveyor, tmp_path: Path) -> None:
    """With a 30 s poll interval, a job enqueued to an idle worker still runs at once (the
    claim waits in Redis for it), and stopping does not wait for the idle claim's
    timeout."""
    ledger = tmp_path / "ledger"
    worker, thread = _worker_thread(app, ["default"], poll_interval=30.0)
    try:
        time.sleep(0.3)  # idle by now
        job = worker_app.record.enqueue(str(ledger))
        assert job.result(timeout=10) == job.id  # woken by the job, not the 30 s poll
        time.sleep(0.3)
        worker.stop()
        thread.join(10)
        assert not thread.is_alive()  # ended well before the idle claim's 30 s
    finally:
        worker.stop(hard=True)
        thread.join(10)
    assert ledger_counts(ledger) == {job.id: 1}


def test_retries_reports_and_outcomes_through_a_worker(app: Conveyor, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    flaky = worker_app.flaky_once.enqueue(str(ledger))
    reported = worker_app.reports.enqueue()
    cancelled = worker_app.cancels_itself.enqueue()
    failing = worker_app.always_fails.enqueue()
    drain(app, ["default"])
    assert flaky.result(timeout=5) == "ok" and ledger_counts(ledger)[flaky.id] == 2
    [error] = flaky.refresh().errors
    assert error["type"] == "ConnectionError" and error["attempt"] == 1 and "at" in error
    job = reported.refresh()
    assert job.progress == 90 and [e["message"] for e in job.logs] == ["first step", "last step"]
    assert cancelled.refresh().state is JobState.CANCELLED
    final = failing.refresh()
    assert final.state is JobState.FAILED and len(final.errors) == 2


async def test_async_api_on_the_callers_loop(app: Conveyor, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    job = await worker_app.record.aenqueue(str(ledger))
    assert (await app.aget_job(job.id)).state is JobState.WAITING
    await adrain(app, ["default"])
    assert await job.aresult(timeout=5) == job.id


def test_cancelling_a_running_job_reaches_it_through_the_keeper(app: Conveyor,
                                                                tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    job = worker_app.slow.enqueue(str(ledger), 30.0)
    worker, thread = _worker_thread(app, ["slow"], lease=1.0)
    try:
        wait_until(lambda: job.refresh().state is JobState.ACTIVE, what="job to start")
        job.cancel()
        wait_until(lambda: job.refresh().state is JobState.CANCELLED, what="cancelled")
    finally:
        worker.stop()
        thread.join(30)
    assert ledger_counts(ledger)[job.id] == 0


def test_a_task_blocking_the_event_loop_keeps_its_lease(app: Conveyor, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    job = worker_app.hogs_the_loop.enqueue(str(ledger), 2.0)
    asyncio.run(adrain(app, ["slow"], lease=0.6, timeout=30))
    final = job.refresh()
    assert final.state is JobState.COMPLETED and final.stalls == 0
    assert ledger_counts(ledger)[job.id] == 1


def test_a_worker_rides_out_a_redis_restart(fresh_redis: RedisServer, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    app = _point(monkeypatch, unique_url(fresh_redis))
    ledger = tmp_path / "ledger"
    try:
        before = app.enqueue_many([worker_app.record.prepare(str(ledger)) for _ in range(20)])
        worker, thread = _worker_thread(app, ["default"], lease=2.0, poll_interval=0.5)
        try:
            wait_until(lambda: len(ledger_counts(ledger)) == 20, what="first jobs")
            fresh_redis.kill()
            time.sleep(0.5)
            fresh_redis.start()  # AOF replayed; connections and scripts are gone
            after = app.enqueue_many([worker_app.record.prepare(str(ledger))
                                      for _ in range(20)])
            wait_until(lambda: all(j.refresh().state is JobState.COMPLETED
                                   for j in before + after), 30, "every job to complete")
        finally:
            worker.stop()
            thread.join(30)
        assert set(ledger_counts(ledger)) == {j.id for j in before + after}
    finally:
        app.close()


@pytest.mark.slow
def test_job_of_a_killed_worker_process_runs_once_more(app: Conveyor, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    job = worker_app.slow.enqueue(str(ledger), 2.0)
    victim = WorkerProcess(app.url, "-q", "slow", "--lease", "1")
    rescuer: WorkerProcess | None = None
    try:
        wait_until(lambda: job.refresh().state is JobState.ACTIVE, what="job to start")
        victim.kill()  # SIGKILL mid-job: no chance to hand it back
        rescuer = WorkerProcess(app.url, "-q", "slow", "--lease", "1")
        wait_until(lambda: job.refresh().state is JobState.COMPLETED, 30, "rescue and rerun")
    finally:
        victim.stop(timeout=10)
        if rescuer is not None:
            rescuer.stop(timeout=10)
    final = job.refresh()
    assert ledger_counts(ledger)[job.id] == 1
    assert final.stalls == 1 and final.errors[0]["type"] == "Stalled"
