"""Flow control with real workers (tasks in tests/flow_workers_app.py), on every backend
with `capabilities.flow_control`: a task raising RateLimited pauses only its key without
charging an attempt (async, thread and process executors), and - with three `conveyor
worker` processes - a global rate limit and a global cap hold on the backend's clock,
and a killed worker's slots return.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor import Conveyor, JobHandle, JobState, Worker
from conveyor.flow.api import store_declared
from tests import flow_workers_app as flow_app
from tests.helpers import WorkerProcess, wait_until
from tests.redis_server import RedisServer, redis_server, unique_url  # noqa: F401 (a session fixture)

BACKENDS = ["sqlite", "redis"]


@pytest.fixture(params=BACKENDS)
def app(request: pytest.FixtureRequest, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Conveyor]:
    """tests/flow_workers_app.py on a fresh store of the backend."""
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        url = unique_url(server)
    else:
        url = f"sqlite:///{tmp_path}/flow.db"
    monkeypatch.setenv("CONVEYOR_URL", url)
    flow_app.app.use(url)
    if not flow_app.app.backend.capabilities.flow_control:
        pytest.skip("backend without flow control")
    yield flow_app.app
    flow_app.app.close()


def _worker_thread(app: Conveyor, queues: list[str], **options: object) -> tuple[
        Worker, threading.Thread]:
    worker = Worker(app, queues, **options)  # type: ignore[arg-type]
    thread = threading.Thread(target=lambda: asyncio.run(worker.run()), daemon=True)
    thread.start()
    return worker, thread


@pytest.mark.parametrize("task", ["pause_async", "pause_thread", "pause_process"])
def test_rate_limited_pauses_only_its_key_and_charges_no_attempt(app: Conveyor,
                                                                 task: str) -> None:
    fn = getattr(flow_app, task)
    paused = [fn.enqueue("a") for _ in range(2)]
    others = [fn.enqueue("b") for _ in range(3)]
    worker, thread = _worker_thread(app, ["paused"], concurrency=1, lease=10.0,
                                    poll_interval=0.05)
    try:
        wait_until(lambda: all(j.refresh().state is JobState.COMPLETED for j in others),
                   30, "tenant b's jobs to complete")
        first, second = (j.refresh() for j in paused)
    finally:
        worker.stop()
        thread.join(30)
    # the first ran once and went back uncharged; the second never started
    assert first.state is JobState.WAITING and first.attempt == 0 and first.errors == []
    assert second.state is JobState.WAITING and second.started_at is None
    for job in (first, second):
        reasons = app.run_sync(lambda j=job: app.backend.flow_blockers(j.id))
        assert [(r["reason"], r["limiter"], r["key"]) for r in reasons] == [
            ("paused", f"task:{task}", "a")]


def test_a_scheduled_job_passes_its_tasks_limits(app: Conveyor) -> None:
    app.schedules.create("hourly", flow_app.held.name, args=[0.0], every="1h")
    plain = [flow_app.held.enqueue(0.0) for _ in range(4)]
    fired = app.schedules.trigger("hourly")
    app.run_sync(lambda: store_declared(app))
    claimed = app.run_sync(lambda: app.backend.fetch(["held"], 10, "w", 30_000)).claims
    assert {c.job.id for c in claimed} == {j.id for j in plain}  # the cap of 4 is full
    assert fired.refresh().state is JobState.WAITING
    reasons = app.run_sync(lambda: app.backend.flow_blockers(fired.id))
    assert [(r["reason"], r["used"], r["limit"]) for r in reasons] == [
        ("concurrency_full", 4, 4)]


# -- three `conveyor worker` processes -------------------------------------------------
APP = "tests.flow_workers_app:app"


def _workers(app: Conveyor, queue: str, n: int, *options: str) -> list[WorkerProcess]:
    return [WorkerProcess(app.url, "-q", queue, *options, app=APP) for _ in range(n)]


def _stop(workers: list[WorkerProcess]) -> None:
    for worker in workers:
        worker.stop(timeout=15)


def _all_completed(jobs: list[JobHandle[Any]]) -> bool:
    return all(s is JobState.COMPLETED for s in _states(jobs))


def _states(jobs: list[JobHandle[Any]]) -> list[JobState]:
    return [j.refresh().state for j in jobs]


@pytest.mark.slow
def test_a_global_rate_holds_across_worker_processes(app: Conveyor) -> None:
    jobs = [flow_app.rated.enqueue() for _ in range(200)]
    workers = _workers(app, "rated", 3, "-c", "20")
    try:
        wait_until(lambda: _all_completed(jobs), 40, "200 rated jobs to complete")
    finally:
        _stop(workers)
    done = [j.refresh() for j in jobs]
    assert all(j.attempt == 1 for j in done)  # one start each: started_at is every start
    starts = sorted(j.started_at for j in done if j.started_at is not None)
    assert len(starts) == 200
    # backend clock: no window (t - 1 s, t] holds a 21st start
    assert all(starts[i + 20] - starts[i] >= 1000 for i in range(len(starts) - 20))


@pytest.mark.slow
def test_a_global_cap_holds_across_worker_processes(app: Conveyor) -> None:
    jobs = [flow_app.capped.enqueue(0.05) for _ in range(100)]
    workers = _workers(app, "capped", 3, "-c", "20")
    try:
        wait_until(lambda: _all_completed(jobs), 40, "100 capped jobs to complete")
    finally:
        _stop(workers)
    done = [j.refresh() for j in jobs]
    assert all(j.attempt == 1 for j in done)
    # the ledger of slot holding on the backend clock: claimed at started_at, settled at
    # finished_at; at equal times an end counts before a start
    ledger = sorted([(j.started_at, 1) for j in done] + [(j.finished_at, -1) for j in done],
                    key=lambda e: (e[0] or 0, e[1]))
    active, peak = 0, 0
    for _, change in ledger:
        active += change
        peak = max(peak, active)
    assert peak == 4


@pytest.mark.slow
def test_a_killed_workers_slots_come_back_with_its_leases(app: Conveyor) -> None:
    long = [flow_app.held.enqueue(60.0) for _ in range(4)]
    short = [flow_app.held.enqueue(0.05) for _ in range(8)]
    [victim] = _workers(app, "held", 1, "-c", "20", "--lease", "1")
    rescuers: list[WorkerProcess] = []
    try:
        wait_until(lambda: _states(long) == [JobState.ACTIVE] * 4, 20, "the cap to fill")
        assert _states(short) == [JobState.WAITING] * 8
        victim.kill()  # SIGKILL with all 4 slots held: nothing hands them back
        rescuers = _workers(app, "held", 2, "-c", "20", "--lease", "1")
        wait_until(lambda: _all_completed(long + short), 30, "rescue and the rest to run")
    finally:
        _stop([victim, *rescuers])
    assert all(j.refresh().stalls == 1 for j in long)
    [info] = [i for i in app.limits.list() if i.name == "task:held"]
    assert all(u.active == 0 for u in info.use)  # every slot came back
