"""Worker hooks and job middleware, on every backend and every executor."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from conveyor import Conveyor, Job
from conveyor.errors import ConfigurationError, WorkerStartError
from conveyor.jobs import JobState
from conveyor.testing import drain
from tests.seams import seams_app
from tests.seams.conftest import journal


@pytest.mark.parametrize("task", ["on_loop", "in_thread", "in_child"])
def test_hooks_and_middleware_wrap_every_executor(seams: Conveyor, tmp_path: Path,
                                                  task: str) -> None:
    job = seams.enqueue(task, n=7)
    drain(seams)
    answer: dict[str, Any] = job.result(timeout=30)
    lines = journal(tmp_path)
    assert answer["n"] == 7
    # the start hook ran in the process that ran the job, before it: its resource is there
    assert answer["pool"] == f"pool-{answer['pid']}"
    assert f"start {answer['pid']}" in lines
    # on_enqueue's meta entry reached the worker
    assert answer["stamp"] == f"stamped-{task}"
    # async middleware outside, sync middleware inside, in the body's own thread/process
    ours = [line for line in lines if job.id in line]
    assert ours[0] == f"outer-before {job.id} 1"
    inner_pid, inner_thread = ours[1].split()[2:]
    assert ours[1].startswith(f"inner {job.id} ") and int(inner_pid) == answer["pid"]
    if task == "on_loop":  # a sync middleware waits for the async body in a pool thread
        assert int(inner_thread) != answer["thread"] == threading.get_ident()
    else:  # it runs in the very thread that runs the `def` body
        assert int(inner_thread) == answer["thread"]
    assert ours[2] == f"outer-after {job.id} 1 ok:7"
    if task == "in_child":
        assert answer["pid"] != os.getpid()
    else:
        assert answer["pid"] == os.getpid()
        if task == "in_thread":
            assert answer["thread"] != threading.get_ident()
    # stop hooks ran after the jobs, in every process that started (children included)
    assert lines[-1].startswith("stop ") or any(line.startswith("stop ") for line in lines)
    stops = [line for line in lines if line.startswith("stop ")]
    starts = [line for line in lines if line.startswith("start ")]
    assert len(stops) == len(starts)
    assert f"stop {os.getpid()} pool-{os.getpid()}" in stops


def test_around_job_sees_failure_then_retry_then_success(seams: Conveyor,
                                                        tmp_path: Path) -> None:
    job = seams.enqueue("flaky", n=3)
    drain(seams)
    assert job.result(timeout=30)["n"] == 3
    ours = [line for line in journal(tmp_path) if line.startswith("outer-after")
            and job.id in line]
    assert ours == [f"outer-after {job.id} 1 error:ValueError",
                    f"outer-after {job.id} 2 ok:3"]


class Exploding:
    def __init__(self, where: str) -> None:
        self.where = where

    async def around_job(self, job: Job, call_next: Any) -> Any:
        if job.task != "job":
            return await call_next()
        if self.where == "before":
            raise RuntimeError("middleware broke before the job")
        await call_next()
        raise RuntimeError("middleware broke after the job")


class ExplodingSync:
    def around_job(self, job: Job, call_next: Any) -> Any:
        if job.task != "job":
            return call_next()
        raise LookupError("sync middleware broke")


@pytest.mark.parametrize("middleware", [Exploding("before"), Exploding("after"),
                                        ExplodingSync()], ids=["async-before", "async-after",
                                                               "sync"])
@pytest.mark.parametrize("executor", ["async", "thread"])
def test_a_middleware_error_fails_the_attempt_not_the_worker(
        backend_url: str, tmp_path: Path, middleware: Any, executor: str) -> None:
    app = Conveyor(backend_url)
    app.add_middleware(middleware)

    if executor == "async":
        @app.task(name="job", attempts=2, backoff="fixed:0.01")
        async def job_async() -> str:
            return "ran"
    else:
        @app.task(name="job", attempts=2, backoff="fixed:0.01")
        def job_thread() -> str:
            return "ran"

    @app.task(name="after", queue="default")
    async def after() -> str:
        return "worker still alive"

    try:
        failing = app.enqueue("job")
        later = app.enqueue("after")
        drain(app)
        stored = failing.refresh()
        assert stored.state is JobState.FAILED
        assert [e["attempt"] for e in stored.errors] == [1, 2]  # retries applied
        assert "middleware broke" in stored.errors[-1]["message"]
        assert later.result(timeout=10) == "worker still alive"
    finally:
        app.close()


def test_a_failing_start_hook_stops_the_worker_with_one_line(backend_url: str) -> None:
    app = Conveyor(backend_url)

    @app.on_worker_start
    def boom() -> None:
        raise OSError("database refused the pool")

    @app.task
    async def never() -> None: ...

    try:
        never.enqueue()
        with pytest.raises(WorkerStartError, match="boom failed: OSError: database refused"):
            drain(app)
        assert app.queues()[0].counts[JobState.WAITING] == 1  # nothing was claimed
    finally:
        app.close()


def test_hooks_and_middleware_refuse_what_they_cannot_run() -> None:
    app = Conveyor("sqlite:///:memory:")
    with pytest.raises(ConfigurationError, match="is not middleware"):
        app.add_middleware(object())
    with pytest.raises(ConfigurationError, match="must be callable"):
        app.on_worker_start(42)  # type: ignore[type-var]


def test_a_child_whose_start_hook_fails_is_replaced_and_the_job_retried(
        seams: Conveyor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "first-child-failed"
    monkeypatch.setenv("SEAMS_FAIL_FIRST_CHILD", str(marker))
    job = seams_app.in_child.options(backoff="fixed:0.01").enqueue(n=5)
    drain(seams, process_workers=1)  # one child: a dead one handed out again would fail it
    stored = job.refresh()
    assert marker.exists() and stored.state is JobState.COMPLETED, stored.errors
    assert [e["message"] for e in stored.errors] == [
        "worker start hook fail_in_the_first_child failed: RuntimeError: the first child "
        "cannot open its pool"]
    assert stored.result["n"] == 5 and stored.attempt == 2


def test_the_module_hooks_are_registered_once(seams: Conveyor) -> None:
    assert seams.hooks.worker_start == [seams_app.open_pool, seams_app.fail_in_the_first_child]
    assert seams.hooks.worker_stop == [seams_app.close_pool]
