"""Chains, groups with a callback and graphs, run by a real worker on SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor import Conveyor, InvalidFlowError, JobState, chain, group
from conveyor.testing import drain
from tests.flows import flow_app as fa
from tests.flows.conftest import runs


def test_a_chain_runs_in_order_passing_each_result(app: Conveyor, ledger: Path) -> None:
    handles = chain(fa.number.prepare(1), fa.add.prepare(10), fa.add.prepare(100),
                    pass_result="previous").enqueue(app)
    assert [h.state for h in handles] == [JobState.WAITING, JobState.WAITING_CHILDREN,
                                          JobState.WAITING_CHILDREN]
    drain(app, timeout=20)
    assert [r[0] for r in runs(ledger)] == [h.id for h in handles]
    assert handles[-1].result(timeout=1) == 111


def test_pass_result_true_fills_the_first_parameter_left_unset(app: Conveyor) -> None:
    handles = chain(fa.number.prepare(2), fa.add.prepare(3), pass_result=True).enqueue(app)
    drain(app, timeout=20)
    assert handles[-1].result(timeout=1) == 5


def test_a_group_callback_gets_results_and_failures(app: Conveyor, ledger: Path) -> None:
    members = [fa.number.prepare(1), fa.boom.prepare(), fa.number.prepare(3)]
    handles = group(members).then(fa.collect.prepare(), pass_result="results").enqueue(app)
    drain(app, timeout=20)
    result = handles[-1].result(timeout=1)
    assert result == {"passed": [1, None, 3], "results": [1, 3], "failures": 1}
    assert runs(ledger)[-1][1] == "collect"


def test_a_group_callback_on_success_is_skipped_when_a_member_fails(app: Conveyor) -> None:
    handles = group([fa.number.prepare(1), fa.boom.prepare()]).then(
        fa.collect.prepare(), on="success").enqueue(app)
    drain(app, timeout=20)
    callback = handles[-1].refresh()
    assert callback.state is JobState.CANCELLED
    assert callback.errors[-1]["type"] == "DependencyFailed"


def test_a_graph_runs_every_job_after_its_parents(app: Conveyor, ledger: Path) -> None:
    flow = app.new_flow()
    a = flow.add(fa.number.prepare(1))
    b = flow.add(fa.add.prepare(2), after=[a], pass_result="previous")
    c = flow.add(fa.add.prepare(3), after=[a], pass_result="previous")
    d = flow.add(fa.collect.prepare(), after=[b, c], pass_result="results", into="list")
    flow.enqueue()
    drain(app, timeout=20)
    order = [r[0] for r in runs(ledger)]
    assert order[0] == a.id and order[-1] == d.id
    assert app.get_job(d.id).result()["passed"] == [3, 4]
    assert {j.id for j in app.get_flow(flow.id)} == {a.id, b.id, c.id, d.id}


def test_a_member_retried_many_times_releases_its_dependent_once(
        app: Conveyor, ledger: Path) -> None:
    handles = chain(fa.flaky.prepare(6), fa.add.prepare(1), pass_result=True).enqueue(app)
    drain(app, timeout=30)
    assert handles[-1].result(timeout=1) == 8  # flaky returned its 7th attempt
    ran = runs(ledger)
    assert [t for _, t, _ in ran] == ["flaky"] * 7 + ["add"]


def test_a_failing_callback_retries_and_runs_once_to_completion(
        app: Conveyor, ledger: Path) -> None:
    handles = group([fa.number.prepare(1), fa.number.prepare(2)]).then(
        fa.flaky_callback.prepare(), pass_result=True).enqueue(app)
    drain(app, timeout=30)
    assert handles[-1].result(timeout=1) == 3
    assert [a for _, t, a in runs(ledger) if t == "flaky_callback"] == [1, 2, 3]


def test_retrying_the_failed_job_resumes_the_flow(app: Conveyor, ledger: Path) -> None:
    handles = chain(fa.boom.prepare(), fa.number.prepare(5)).enqueue(app)
    drain(app, timeout=20)
    assert handles[1].refresh().state is JobState.FAILED
    app.retry_job(handles[0].id)
    assert handles[1].refresh().state is JobState.WAITING_CHILDREN
    drain(app, timeout=20)
    assert handles[0].refresh().state is JobState.FAILED  # boom fails again: stays failed
    assert handles[1].refresh().state is JobState.FAILED


def test_a_flow_cancelled_half_way(app: Conveyor, ledger: Path) -> None:
    handles = chain(*(fa.number.prepare(i) for i in range(4))).enqueue(app)
    flow_id = handles[0].job.flow_id
    assert flow_id is not None
    assert set(app.cancel_flow(flow_id)) == {h.id for h in handles}
    drain(app, timeout=20)
    assert runs(ledger) == []
    assert {j.state for j in app.get_flow(flow_id)} == {JobState.CANCELLED}


def test_bad_flows_are_refused_and_store_nothing(app: Conveyor) -> None:
    flow = app.new_flow()
    a = fa.number.prepare(1)
    with pytest.raises(InvalidFlowError, match="unknown parent"):
        flow.add(fa.number.prepare(2), after=[a])
    flow.add(a)
    with pytest.raises(InvalidFlowError, match="no parameter 'nope'"):
        flow.add(fa.add.prepare(1), after=[a], pass_result="nope")
    with pytest.raises(InvalidFlowError, match="given in the call"):
        flow.add(fa.number.prepare(1), after=[a], pass_result="n")
    assert len(flow) == 1  # refused jobs are not kept
    with pytest.raises(InvalidFlowError, match="on_failure"):
        flow.add(fa.number.prepare(1), after=[a], on_failure="maybe")
    with pytest.raises(InvalidFlowError, match="expir"):
        flow.add(fa.number.options(expires="1m").prepare(1), after=[a])
    bad = chain(fa.number.prepare(1), fa.add.prepare(1, previous=2), pass_result="previous")
    with pytest.raises(InvalidFlowError, match="given in the call"):
        bad.enqueue(app)
    assert app.queues() == []


def test_a_job_spawns_children_waits_for_them_and_runs_again(
        app: Conveyor, ledger: Path) -> None:
    handle = fa.fan_out.enqueue(3)
    drain(app, timeout=20)
    assert handle.result(timeout=1) == [0, 1, 2]
    ran = [t for _, t, _ in runs(ledger)]
    assert ran[0] == "fan_out" and ran[-1] == "fan_out" and ran.count("number") == 3
    assert len(app.get_flow(handle.id)) == 4
    assert handle.refresh().attempt == 1  # the run that spawned was not charged


def test_a_process_executor_task_gets_its_dependencies(app: Conveyor) -> None:
    handles = chain(fa.number.prepare(5), fa.in_child.prepare(), pass_result=True).enqueue(app)
    drain(app, timeout=60)
    assert handles[-1].result(timeout=1) == {"passed": 5, "results": [5]}
