"""The metrics plugin counts enqueues and retries (a delayed job's promotion is not a second
enqueue), reports worker slots and this process's collectors, has no `_created` series, and
exactly one of several serving replicas reports the queue-wide families, so `sum` over
replicas is right."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conveyor import Conveyor
from conveyor.backends.base import WorkerInfo
from conveyor.metrics import Metrics
from conveyor.testing import adrain
from tests.redis_server import redis_server, unique_url  # noqa: F401 (a session fixture)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(params=["sqlite", "redis"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "redis":
        return unique_url(request.getfixturevalue("redis_server"))
    return f"sqlite:///{tmp_path}/jobs.db"


def make_app(url: str) -> Conveyor:
    app = Conveyor(url)
    failures = itertools.count()

    @app.task(queue="work")
    def add(a: int, b: int) -> int:
        return a + b

    @app.task(queue="work", attempts=3, backoff="fixed:0.05s")
    def flaky() -> str:
        if next(failures) == 0:
            raise ConnectionError("first attempt fails")
        return "ok"

    return app


@pytest.fixture
async def app(url: str) -> AsyncIterator[Conveyor]:
    app = make_app(url)
    await app.aopen()
    yield app
    await app.aclose()


def samples(text: bytes) -> Samples:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text.decode())
            for s in family.samples}


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


async def test_enqueues_and_retries_are_counted_once_each(app: Conveyor) -> None:
    metrics = app.install(Metrics())
    await metrics.render()  # counting starts at the stream's head
    tasks = app.tasks
    for i in range(2):
        await tasks["add"].aenqueue(i, i)
    await tasks["add"].options(delay=0.05).aenqueue(5, 5)  # promoted later: one enqueue
    await tasks["flaky"].aenqueue()
    await adrain(app, ["work"])
    found = samples(await metrics.render())
    assert value(found, "conveyor_jobs_enqueued_total", queue="work", task="add") == 3
    assert value(found, "conveyor_jobs_enqueued_total", queue="work", task="flaky") == 1
    assert value(found, "conveyor_jobs_retried_total", queue="work", task="flaky") == 1
    assert value(found, "conveyor_jobs_retried_total", queue="work", task="add") is None
    assert value(found, "conveyor_jobs_finished_total", queue="work", task="flaky",
                 outcome="completed") == 1


async def test_no_created_series_and_process_collectors_are_there(app: Conveyor) -> None:
    metrics = app.install(Metrics())
    await metrics.render()
    await app.tasks["add"].aenqueue(1, 2)
    await adrain(app, ["work"])
    text = await metrics.render()
    assert b"conveyor_jobs_finished_total{" in text
    assert b"_created" not in text
    found = samples(text)
    assert value(found, "process_resident_memory_bytes") is not None
    assert value(found, "process_cpu_seconds_total") is not None
    assert any(name.startswith("python_gc_") for name, _ in found)


async def test_worker_slots_are_busy_and_free_slots_of_live_workers(app: Conveyor) -> None:
    metrics = app.install(Metrics())
    for number, (concurrency, in_flight) in enumerate([(10, 3), (4, 4)]):
        info = WorkerInfo(id=f"w{number}", host="h", pid=number, queues=("work",),
                          concurrency=concurrency, in_flight=in_flight)
        await app.backend.heartbeat(info, [], 30_000)
    found = samples(await metrics.render())
    assert value(found, "conveyor_worker_slots", state="busy") == 7
    assert value(found, "conveyor_worker_slots", state="free") == 7
    assert value(found, "conveyor_workers", queue="work") == 2


async def test_one_replica_reports_queue_wide_metrics_and_another_takes_over(
        app: Conveyor, url: str) -> None:
    first = app.install(Metrics(reporter_ttl=0.3))
    other_app = make_app(url)
    await other_app.aopen()
    try:
        second = other_app.install(Metrics(reporter_ttl=0.3))
        await app.tasks["add"].aenqueue(1, 1)
        reporting = samples(await first.render())
        quiet = samples(await second.render())
        assert value(reporting, "conveyor_metrics_reporter") == 1
        assert value(reporting, "conveyor_queue_jobs", queue="work", state="waiting") == 1
        assert value(quiet, "conveyor_metrics_reporter") == 0
        assert not [name for name, _ in quiet if name.startswith(("conveyor_queue_",
                                                                  "conveyor_jobs_"))]
        assert value(quiet, "process_cpu_seconds_total") is not None  # its own, always

        deadline = time.monotonic() + 10  # the first stops renewing: its lock lapses
        while value(samples(await second.render()), "conveyor_metrics_reporter") != 1:
            assert time.monotonic() < deadline, "the second replica never took over"
            await asyncio.sleep(0.05)
        assert value(samples(await first.render()), "conveyor_metrics_reporter") == 0
    finally:
        await other_app.aclose()
