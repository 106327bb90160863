"""Flows on every backend: storing a flow atomically, releasing a dependent in the settle
that finishes its last dependency, failure policies per edge, resuming by retry, and
cancelling a flow or one of its jobs."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor.backends.base import Backend, JobFilter, NewJob, Outcome, Retention, Settlement
from conveyor.errors import InvalidFlowError
from conveyor.ids import new_job_id
from conveyor.jobs import JobState

from .conftest import new_job

W = "worker-1"
LEASE = 30_000


@pytest.fixture(autouse=True)
def _needs_flows(backend: Backend) -> None:
    if not backend.capabilities.flows:
        pytest.skip("backend without flows")


def member(flow_id: str, *parents: Any, queue: str = "q", **fields: Any) -> NewJob:
    """A job of a flow waiting for `parents`: NewJobs (policy "fail") or (NewJob, policy)."""
    edges = tuple((p.id, "fail") if isinstance(p, NewJob) else (p[0].id, p[1])
                  for p in parents)
    return new_job(queue=queue, flow_id=flow_id, parents=edges, **fields)


async def run_next(backend: Backend, outcome: Outcome = Outcome.COMPLETED,
                   expect: str | None = None, **kw: Any) -> str:
    """Claim one job, check it is `expect`, settle it with `outcome`; its id."""
    fetched = await backend.fetch(["q"], 1, W, LEASE)
    assert len(fetched.claims) == 1, "expected a job to be ready"
    claim = fetched.claims[0]
    if expect is not None:
        assert claim.job.id == expect
    assert await backend.settle([Settlement(claim.job.id, claim.token, outcome, **kw)]) == [True]
    return claim.job.id


async def state(backend: Backend, job_id: str) -> JobState:
    job = await backend.get(job_id)
    assert job is not None
    return job.state


FAIL = {"error": {"type": "ValueError", "message": "boom"}}


async def test_a_chain_runs_in_order_and_each_release_is_the_settle_of_its_parent(
        backend: Backend) -> None:
    f = new_job_id()
    a = member(f)
    b = member(f, a)
    c = member(f, b)
    stored = await backend.enqueue_flow([a, b, c])
    assert [j.state for j in stored] == [JobState.WAITING, JobState.WAITING_CHILDREN,
                                         JobState.WAITING_CHILDREN]
    assert stored[2].parents == {b.id: "fail"} and stored[2].waits == 1
    assert stored[0].flow_id == f
    # nothing but the head can be claimed
    fetched = await backend.fetch(["q"], 10, W, LEASE)
    assert [c.job.id for c in fetched.claims] == [a.id]
    claim = fetched.claims[0]
    # the settle that completes a releases b, seen by the same fetch call
    fetched = await backend.fetch(["q"], 10, W, LEASE, settle=[
        Settlement(a.id, claim.token, Outcome.COMPLETED, result_json="1")])
    assert fetched.settled == [True]
    assert [c.job.id for c in fetched.claims] == [b.id]
    assert await state(backend, c.id) is JobState.WAITING_CHILDREN
    await backend.settle([Settlement(b.id, fetched.claims[0].token, Outcome.COMPLETED)])
    await run_next(backend, expect=c.id)
    assert [j.state for j in await backend.flow_jobs(f)] == [JobState.COMPLETED] * 3


async def test_a_group_callback_waits_for_every_member(backend: Backend) -> None:
    f = new_job_id()
    members = [member(f) for _ in range(3)]
    callback = member(f, *((m, "continue") for m in members))
    await backend.enqueue_flow([*members, callback])
    first = await run_next(backend)
    job = await backend.get(callback.id)
    assert job is not None and job.waits == 2 and job.state is JobState.WAITING_CHILDREN
    await run_next(backend, Outcome.FAILED, None, **FAIL)  # "continue": a failure counts as done
    assert await state(backend, callback.id) is JobState.WAITING_CHILDREN
    await run_next(backend)
    await run_next(backend, expect=callback.id)
    assert first in {m.id for m in members}


async def test_a_failed_dependency_fails_its_dependents_by_default_and_names_itself(
        backend: Backend) -> None:
    f = new_job_id()
    a = member(f)
    b = member(f, a)
    c = member(f, b)
    await backend.enqueue_flow([a, b, c])
    await run_next(backend, Outcome.FAILED, expect=a.id, **FAIL)
    for dependent in (b, c):
        job = await backend.get(dependent.id)
        assert job is not None and job.state is JobState.FAILED
        assert job.errors[-1]["type"] == "DependencyFailed"
    job = await backend.get(b.id)
    assert job is not None and a.id in job.errors[-1]["message"]
    assert (await backend.fetch(["q"], 10, W, LEASE)).claims == []


async def test_skip_cancels_the_dependent_and_continue_runs_it(backend: Backend) -> None:
    f = new_job_id()
    a = member(f)
    skipped = member(f, (a, "skip"))
    runs = member(f, (a, "continue"))
    await backend.enqueue_flow([a, skipped, runs])
    await run_next(backend, Outcome.FAILED, expect=a.id, **FAIL)
    assert await state(backend, skipped.id) is JobState.CANCELLED
    await run_next(backend, expect=runs.id)


async def test_retrying_the_failed_dependency_resumes_the_flow(backend: Backend) -> None:
    f = new_job_id()
    a = member(f)
    b = member(f, a)
    c = member(f, b)
    await backend.enqueue_flow([a, b, c])
    await run_next(backend, Outcome.FAILED, expect=a.id, **FAIL)
    assert await state(backend, c.id) is JobState.FAILED
    assert await backend.retry(JobFilter(ids=(a.id,))) == [a.id]
    assert await state(backend, b.id) is JobState.WAITING_CHILDREN
    assert await state(backend, c.id) is JobState.WAITING_CHILDREN
    await run_next(backend, expect=a.id)
    await run_next(backend, expect=b.id)
    await run_next(backend, expect=c.id)


async def test_a_retried_dependency_does_not_revive_a_dependent_another_one_failed(
        backend: Backend) -> None:
    f = new_job_id()
    a, b = member(f), member(f)
    c = member(f, a, b)
    await backend.enqueue_flow([a, b, c])
    await run_next(backend, Outcome.FAILED, expect=a.id, **FAIL)
    await run_next(backend, Outcome.FAILED, expect=b.id, **FAIL)
    await backend.retry(JobFilter(ids=(a.id,)))
    assert await state(backend, c.id) is JobState.FAILED  # b still holds it failed
    await backend.retry(JobFilter(ids=(b.id,)))
    assert await state(backend, c.id) is JobState.WAITING_CHILDREN
    await run_next(backend)
    await run_next(backend)
    await run_next(backend, expect=c.id)


async def test_a_retried_attempt_does_not_release_dependents(backend: Backend) -> None:
    f = new_job_id()
    a = member(f, max_attempts=3)
    b = member(f, a)
    await backend.enqueue_flow([a, b])
    await run_next(backend, Outcome.FAILED, expect=a.id, retry_in_ms=0, **FAIL)
    assert await state(backend, b.id) is JobState.WAITING_CHILDREN
    await run_next(backend, expect=a.id)
    await run_next(backend, expect=b.id)


async def test_cancelling_one_job_applies_the_policy_to_its_dependents(
        backend: Backend) -> None:
    f = new_job_id()
    a = member(f)
    b = member(f, a)
    failed = member(f, b)
    runs = member(f, (b, "continue"))
    await backend.enqueue_flow([a, b, failed, runs])
    assert await backend.cancel(JobFilter(ids=(b.id,))) == [b.id]
    assert await state(backend, failed.id) is JobState.FAILED
    await run_next(backend, expect=a.id)
    assert await state(backend, runs.id) is JobState.WAITING  # its only edge resolved


async def test_cancelling_a_flow_cancels_what_has_not_run(backend: Backend) -> None:
    f = new_job_id()
    a = member(f)
    b = member(f, a)
    c = member(f, b)
    d = member(f, c)
    await backend.enqueue_flow([a, b, c, d])
    await run_next(backend, expect=a.id)
    running = (await backend.fetch(["q"], 1, W, LEASE)).claims[0]
    assert running.job.id == b.id
    cancelled = await backend.cancel_flow(f)
    assert set(cancelled) == {b.id, c.id, d.id}
    assert await state(backend, c.id) is JobState.CANCELLED
    assert await state(backend, d.id) is JobState.CANCELLED
    assert await state(backend, a.id) is JobState.COMPLETED
    job = await backend.get(b.id)
    assert job is not None and job.cancel_requested
    assert await backend.settle([Settlement(b.id, running.token, Outcome.CANCELLED)]) == [True]
    assert await state(backend, c.id) is JobState.CANCELLED  # not failed by b


async def test_a_stalled_dependency_past_max_stalls_fails_its_dependents(
        backend: Backend) -> None:
    f = new_job_id()
    a = member(f, max_stalls=0)
    b = member(f, a)
    await backend.enqueue_flow([a, b])
    await backend.fetch(["q"], 1, W, 1)
    await _after_ms(backend, 5)
    assert await backend.rescue() == [a.id]
    assert await state(backend, b.id) is JobState.FAILED


async def _after_ms(backend: Backend, ms: int) -> None:
    start = await backend.now()
    while await backend.now() - start <= ms:
        pass


async def test_waiting_children_is_counted_per_queue(backend: Backend) -> None:
    f = new_job_id()
    a = member(f)
    await backend.enqueue_flow([a, member(f, a), member(f, a)])
    [info] = [q for q in await backend.queues() if q.name == "q"]
    assert info.counts[JobState.WAITING_CHILDREN] == 2
    assert info.counts[JobState.WAITING] == 1
    page = await backend.list_jobs(JobFilter(states=(JobState.WAITING_CHILDREN,)))
    assert len(page.jobs) == 2


@pytest.mark.parametrize("bad", ["unknown_parent", "reused_id", "dedup_key", "mixed_flow"])
async def test_a_bad_flow_stores_nothing(backend: Backend, bad: str) -> None:
    f = new_job_id()
    a = member(f)
    b = member(f, a)
    existing = new_job()
    await backend.enqueue([existing])
    if bad == "unknown_parent":
        jobs = [a, member(f, new_job())]
    elif bad == "reused_id":
        jobs = [a, b, member(f, a, id=existing.id)]
    elif bad == "dedup_key":
        jobs = [a, member(f, a, key="k")]
    else:
        jobs = [a, member(new_job_id(), a)]
    with pytest.raises(InvalidFlowError):
        await backend.enqueue_flow(jobs)
    assert await backend.get(a.id) is None
    assert await backend.flow_jobs(f) == []
    again = await backend.get(existing.id)
    assert again is not None and again.flow_id is None


async def test_a_flow_across_queues(backend: Backend) -> None:
    f = new_job_id()
    a = member(f, queue="one")
    b = member(f, a, queue="two")
    if not backend.capabilities.flows_across_queues:
        with pytest.raises(InvalidFlowError, match="one queue"):
            await backend.enqueue_flow([a, b])
        assert await backend.get(a.id) is None
        return
    await backend.enqueue_flow([a, b])
    claim = (await backend.fetch(["one"], 1, W, LEASE)).claims[0]
    await backend.settle([Settlement(a.id, claim.token, Outcome.COMPLETED)])
    assert [c.job.id for c in (await backend.fetch(["two"], 1, W, LEASE)).claims] == [b.id]


async def test_retention_keeps_a_flow_whole_while_any_job_of_it_is_unfinished(
        backend: Backend) -> None:
    f = new_job_id()
    a = member(f)
    b = member(f, a)
    await backend.enqueue_flow([a, b])
    plain = new_job(queue="other")
    await backend.enqueue([plain])
    await run_next(backend, expect=a.id)
    claim = (await backend.fetch(["other"], 1, W, LEASE)).claims[0]
    await backend.settle([Settlement(plain.id, claim.token, Outcome.COMPLETED)])
    keep_none = Retention(completed_max_count=0, failed_max_count=0)
    await backend.prune(keep_none)
    assert await backend.get(plain.id) is None  # retention still applies elsewhere
    assert await backend.get(a.id) is not None  # b has not run: a's result is kept
    await run_next(backend, expect=b.id)
    await backend.prune(keep_none)
    assert await backend.get(a.id) is None and await backend.get(b.id) is None
    assert await backend.flow_jobs(f) == []


async def test_a_job_waiting_for_dependencies_can_be_removed(backend: Backend) -> None:
    f = new_job_id()
    a = member(f)
    b = member(f, a)
    await backend.enqueue_flow([a, b])
    assert await backend.remove(JobFilter(ids=(b.id,))) == [b.id]
    await run_next(backend, expect=a.id)
    assert await backend.get(b.id) is None
    assert [j.id for j in await backend.flow_jobs(f)] == [a.id]


async def test_a_running_job_spawns_children_and_runs_again_after_them(
        backend: Backend) -> None:
    parent = new_job()
    await backend.enqueue([parent])
    claim = (await backend.fetch(["q"], 1, W, LEASE)).claims[0]
    kids = [new_job(), new_job()]
    stored = await backend.spawn(claim.lease, kids)
    assert [j.id for j in stored] == [k.id for k in kids]
    assert {j.flow_id for j in stored} == {parent.id}
    done = await backend.settle([Settlement(parent.id, claim.token, Outcome.WAIT_CHILDREN)])
    assert done == [True]
    job = await backend.get(parent.id)
    assert job is not None and job.state is JobState.WAITING_CHILDREN and job.waits == 2
    assert job.attempt == 0 and set(job.parents) == {k.id for k in kids}
    await run_next(backend, Outcome.FAILED, None, **FAIL)  # "continue": it runs anyway
    assert await state(backend, parent.id) is JobState.WAITING_CHILDREN
    await run_next(backend)
    await run_next(backend, expect=parent.id)
    assert {j.id for j in await backend.flow_jobs(parent.id)} == {parent.id,
                                                                  *(k.id for k in kids)}


async def test_children_that_finish_before_their_parent_settles_leave_it_due(
        backend: Backend) -> None:
    parent = new_job()
    await backend.enqueue([parent])
    claim = (await backend.fetch(["q"], 1, W, LEASE)).claims[0]
    [kid] = await backend.spawn(claim.lease, [new_job()])
    await run_next(backend, expect=kid.id)
    await backend.settle([Settlement(parent.id, claim.token, Outcome.WAIT_CHILDREN)])
    await run_next(backend, expect=parent.id)


async def test_spawn_with_a_lost_lease_stores_nothing(backend: Backend) -> None:
    parent = new_job()
    await backend.enqueue([parent])
    claim = (await backend.fetch(["q"], 1, W, LEASE)).claims[0]
    await backend.settle([Settlement(parent.id, claim.token, Outcome.COMPLETED)])
    kid = new_job()
    with pytest.raises(InvalidFlowError, match="lease"):
        await backend.spawn(claim.lease, [kid])
    assert await backend.get(kid.id) is None


async def test_a_failure_ends_and_a_retry_revives_a_chain_deeper_than_trigger_limits(
        backend: Backend) -> None:
    f = new_job_id()
    jobs = [member(f)]
    for _ in range(1_499):
        jobs.append(member(f, jobs[-1]))
    await backend.enqueue_flow(jobs)
    await run_next(backend, Outcome.FAILED, jobs[0].id, **FAIL)
    states = {j.state for j in await backend.flow_jobs(f)}
    assert states == {JobState.FAILED}
    await backend.retry(JobFilter(ids=(jobs[0].id,)))
    after = await backend.flow_jobs(f)
    assert [j.state for j in after[1:]] == [JobState.WAITING_CHILDREN] * 1_499
    assert after[0].state is JobState.WAITING


async def test_removing_an_unfinished_dependency_applies_its_edges_as_cancelled(
        backend: Backend) -> None:
    f = new_job_id()
    a = member(f)
    failed = member(f, a)
    runs = member(f, (a, "continue"))
    await backend.enqueue_flow([a, failed, runs])
    assert await backend.remove(JobFilter(ids=(a.id,))) == [a.id]
    assert await state(backend, failed.id) is JobState.FAILED
    await run_next(backend, expect=runs.id)
