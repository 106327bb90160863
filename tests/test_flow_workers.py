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

import pytest

from conveyor import Conveyor, JobState, Worker
from tests import flow_workers_app as flow_app
from tests.helpers import wait_until
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
