"""Flows through real `conveyor worker` processes: many groups with callbacks shared by
three workers, and a graph whose workers are killed with SIGKILL while it runs."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conveyor import Conveyor, JobState, group
from tests.flows import flow_app as fa
from tests.flows.conftest import runs
from tests.helpers import WorkerProcess, wait_until

pytestmark = pytest.mark.slow
APP = "tests.flows.flow_app:app"
GROUPS = 1_000


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for w in started:
        w.stop(timeout=10)


def _done(app: Conveyor, total: int) -> bool:
    infos = [q for q in app.queues() if q.name == "default"]
    return bool(infos) and infos[0].counts[JobState.COMPLETED] == total


def test_every_group_callback_runs_exactly_once_across_three_workers(
        app: Conveyor, ledger: Path, workers: list[WorkerProcess]) -> None:
    callbacks: dict[str, set[str]] = {}
    for g in range(GROUPS):
        handles = group([fa.number.prepare(g * 10 + i) for i in range(10)]).then(
            fa.collect.prepare(), pass_result=True).enqueue(app)
        callbacks[handles[-1].id] = {h.id for h in handles[:-1]}
    for _ in range(3):
        workers.append(WorkerProcess(app.url, "-c", "50", app=APP))
    wait_until(lambda: _done(app, GROUPS * 11), 120, f"{GROUPS} groups")
    ran = runs(ledger)
    counts = Counter(job_id for job_id, _, _ in ran)
    assert len(counts) == GROUPS * 11 and set(counts.values()) == {1}
    position = {job_id: i for i, (job_id, _, _) in enumerate(ran)}
    for callback, members in callbacks.items():
        assert all(position[m] < position[callback] for m in members)
    sample = next(iter(callbacks))
    assert sorted(app.get_job(sample).result()["passed"]) == sorted(
        app.get_job(m).result() for m in callbacks[sample])


@pytest.mark.timeout(400)  # its own waits say what is missing before the run's limit
def test_killed_workers_never_start_a_dependent_early_nor_release_it_twice(
        app: Conveyor, ledger: Path, workers: list[WorkerProcess]) -> None:
    rng = random.Random(13)
    flow = app.new_flow()
    added = [flow.add(fa.step.prepare(i)) for i in range(5)]
    for i in range(5, 200):
        added.append(flow.add(fa.step.prepare(i),
                              after=rng.sample(added, rng.randint(1, min(3, len(added))))))
    flow.enqueue()
    parents = {job.id: set(job.parents) for job in app.get_flow(flow.id)}
    for _ in range(3):
        workers.append(WorkerProcess(app.url, "-c", "10", "--lease", "1", app=APP))
    def ended_more_than(goal: int) -> Callable[[], bool]:
        return lambda: sum(1 for _, kind, _ in runs(ledger) if kind == "end") > goal

    for round_ in range(3):  # kill -9 one worker mid-graph, start another
        wait_until(ended_more_than(40 * (round_ + 1)), 60, "the graph to progress")
        workers[round_].kill()
        workers.append(WorkerProcess(app.url, "-c", "10", "--lease", "1", app=APP))
    wait_until(lambda: _done(app, 200), 120, "the whole graph")
    ran = runs(ledger)
    first_start: dict[str, int] = {}
    last_end: dict[str, int] = {}
    for i, (job_id, kind, _) in enumerate(ran):
        if kind == "start":
            first_start.setdefault(job_id, i)
        else:
            last_end[job_id] = i
    assert set(first_start) == set(parents)  # none lost
    for job_id, deps in parents.items():  # none before its dependencies ended
        assert all(last_end[d] < first_start[job_id] for d in deps)
    starts = Counter(job_id for job_id, kind, _ in ran if kind == "start")
    for job in app.get_flow(flow.id):  # a second run only for a job taken back (stall)
        assert job.state is JobState.COMPLETED
        assert starts[job.id] - 1 <= job.stalls
