"""The job lifecycle every backend must implement: enqueue, claim, settle, retry, events."""

from __future__ import annotations

import asyncio

from conveyor.backends.base import (
    Backend,
    JobFilter,
    Lease,
    LeaseStatus,
    Outcome,
    Settlement,
    WorkerInfo,
)
from conveyor.jobs import JobState

from .conftest import new_job

W = "worker-1"
LEASE = 30_000


def done(claim_id: str, token: str, outcome: Outcome = Outcome.COMPLETED,
         **kw: object) -> Settlement:
    return Settlement(claim_id, token, outcome, **kw)  # type: ignore[arg-type]


async def test_enqueued_job_reads_back_with_every_field(backend: Backend) -> None:
    new = new_job(kwargs_json='{"user_id": 7}', priority=3, max_attempts=5, max_stalls=2,
                  timeout=12.5, backoff_json='{"type": "fixed", "delay": 1.0}',
                  meta_json='{"trace": "abc"}')
    [stored] = await backend.enqueue([new])
    assert stored.created
    job = await backend.get(new.id)
    assert job is not None
    assert (job.id, job.queue, job.task) == (new.id, "q", "t")
    assert job.kwargs == {"user_id": 7} and job.args == []
    assert job.state is JobState.WAITING
    assert (job.priority, job.max_attempts, job.max_stalls, job.timeout) == (3, 5, 2, 12.5)
    assert job.backoff == {"type": "fixed", "delay": 1.0}
    assert job.meta == {"trace": "abc"}
    assert job.attempt == 0 and job.errors == [] and job.result is None
    assert abs(job.created_at - await backend.now()) < 5_000


async def test_unknown_id_is_none_and_has_no_tombstone(backend: Backend) -> None:
    assert await backend.get("nope") is None
    assert await backend.tombstone("nope") is None


async def test_claim_order_is_priority_then_due_time_then_fifo(backend: Backend) -> None:
    low = new_job(priority=0)
    high = new_job(priority=10)
    low2 = new_job(priority=0)
    mid = new_job(priority=5)
    await backend.enqueue([low, high, low2, mid])
    fetched = await backend.fetch(["q"], 10, W, LEASE)
    assert [c.job.id for c in fetched.claims] == [high.id, mid.id, low.id, low2.id]


async def test_claim_order_spans_several_queues_by_priority(backend: Backend) -> None:
    a = new_job("a", priority=1)
    b = new_job("b", priority=9)
    await backend.enqueue([a, b])
    fetched = await backend.fetch(["a", "b"], 1, W, LEASE)
    assert [c.job.id for c in fetched.claims] == [b.id]


async def test_claim_sets_active_lease_and_attempt(backend: Backend) -> None:
    new = new_job()
    await backend.enqueue([new])
    [claim] = (await backend.fetch(["q"], 5, W, LEASE)).claims
    assert claim.job.state is JobState.ACTIVE
    assert claim.job.attempt == 1 and claim.job.worker == W
    assert claim.token
    assert (await backend.fetch(["q"], 5, W, LEASE)).claims == []


async def test_other_queues_are_not_claimed(backend: Backend) -> None:
    await backend.enqueue([new_job("other")])
    assert (await backend.fetch(["q"], 5, W, LEASE)).claims == []


async def test_complete_records_result_and_frees_the_lease(backend: Backend) -> None:
    new = new_job()
    await backend.enqueue([new])
    [claim] = (await backend.fetch(["q"], 1, W, LEASE)).claims
    assert await backend.settle([done(new.id, claim.token, result_json='{"ok": 1}')]) == [True]
    job = await backend.get(new.id)
    assert job is not None and job.state is JobState.COMPLETED
    assert job.result == {"ok": 1} and job.finished_at is not None
    # the same lease cannot settle twice
    assert await backend.settle([done(new.id, claim.token)]) == [False]


async def test_settle_in_fetch_records_outcomes_and_claims_next(backend: Backend) -> None:
    first, second = new_job(), new_job()
    await backend.enqueue([first, second])
    [c1] = (await backend.fetch(["q"], 1, W, LEASE)).claims
    fetched = await backend.fetch(["q"], 1, W, LEASE, settle=[done(first.id, c1.token)])
    assert fetched.settled == [True]
    assert [c.job.id for c in fetched.claims] == [second.id]
    job = await backend.get(first.id)
    assert job is not None and job.state is JobState.COMPLETED


async def test_stale_token_cannot_settle_report_or_heartbeat(backend: Backend) -> None:
    new = new_job()
    await backend.enqueue([new])
    [claim] = (await backend.fetch(["q"], 1, W, LEASE)).claims
    forged = Lease(new.id, "not-the-token")
    assert await backend.settle([done(new.id, "not-the-token")]) == [False]
    assert await backend.progress(forged, 50) is False
    assert await backend.log(forged, "hello") is False
    info = WorkerInfo(W, "host", 1, ("q",), 1)
    assert await backend.heartbeat(info, [forged, claim.lease], LEASE) == [
        LeaseStatus.LOST, LeaseStatus.HELD]
    job = await backend.get(new.id)
    assert job is not None and job.state is JobState.ACTIVE and job.progress is None


async def test_failure_with_retry_delay_schedules_a_delayed_retry(backend: Backend) -> None:
    new = new_job()
    await backend.enqueue([new])
    [claim] = (await backend.fetch(["q"], 1, W, LEASE)).claims
    error = {"attempt": 1, "type": "ValueError", "message": "boom", "traceback": "tb"}
    before = await backend.now()
    assert await backend.settle([done(new.id, claim.token, Outcome.FAILED, error=error,
                                      retry_in_ms=60_000)]) == [True]
    job = await backend.get(new.id)
    assert job is not None and job.state is JobState.DELAYED
    assert 59_000 <= job.scheduled_at - before <= 65_000
    assert job.errors[0]["type"] == "ValueError" and job.errors[0]["message"] == "boom"
    fetched = await backend.fetch(["q"], 1, W, LEASE)
    assert fetched.claims == []
    assert fetched.next_due_in_ms is not None and 50_000 < fetched.next_due_in_ms <= 60_000


async def test_retry_becomes_due_and_runs_as_next_attempt(backend: Backend) -> None:
    new = new_job()
    await backend.enqueue([new])
    [claim] = (await backend.fetch(["q"], 1, W, LEASE)).claims
    await backend.settle([done(new.id, claim.token, Outcome.FAILED,
                               error={"type": "E", "message": "x"}, retry_in_ms=150)])
    await asyncio.sleep(0.25)
    [again] = (await backend.fetch(["q"], 1, W, LEASE)).claims
    assert again.job.id == new.id and again.job.attempt == 2
    assert again.token != claim.token


async def test_final_failure_lands_in_failed_set_with_every_error(backend: Backend) -> None:
    new = new_job(max_attempts=2)
    await backend.enqueue([new])
    [c1] = (await backend.fetch(["q"], 1, W, LEASE)).claims
    await backend.settle([done(new.id, c1.token, Outcome.FAILED,
                               error={"type": "E", "message": "first"}, retry_in_ms=0)])
    [c2] = (await backend.fetch(["q"], 1, W, LEASE)).claims
    await backend.settle([done(new.id, c2.token, Outcome.FAILED,
                               error={"type": "E", "message": "second"})])
    job = await backend.get(new.id)
    assert job is not None and job.state is JobState.FAILED
    assert [e["message"] for e in job.errors] == ["first", "second"]
    assert job.finished_at is not None


async def test_release_hands_back_without_charging_an_attempt(backend: Backend) -> None:
    new = new_job()
    await backend.enqueue([new])
    [claim] = (await backend.fetch(["q"], 1, W, LEASE)).claims
    assert await backend.settle([done(new.id, claim.token, Outcome.RELEASED)]) == [True]
    job = await backend.get(new.id)
    assert job is not None and job.state is JobState.WAITING and job.attempt == 0
    [again] = (await backend.fetch(["q"], 1, W, LEASE)).claims
    assert again.job.attempt == 1


async def test_progress_and_logs_are_kept_with_the_job(backend: Backend) -> None:
    new = new_job()
    await backend.enqueue([new])
    [claim] = (await backend.fetch(["q"], 1, W, LEASE)).claims
    assert await backend.progress(claim.lease, {"percent": 40}) is True
    assert await backend.log(claim.lease, "step one") is True
    job = await backend.get(new.id)
    assert job is not None and job.progress == {"percent": 40}
    assert [entry["message"] for entry in job.logs] == ["step one"]


async def test_events_record_every_step_and_resume_by_id(backend: Backend) -> None:
    start = await backend.events(after=0, limit=10_000)
    after = start[-1].id if start else 0
    new = new_job()
    await backend.enqueue([new])
    [claim] = (await backend.fetch(["q"], 1, W, LEASE)).claims
    await backend.progress(claim.lease, 50)
    await backend.log(claim.lease, "half way")
    await backend.settle([done(new.id, claim.token)])
    events = [e for e in await backend.events(after=after) if e.job_id == new.id]
    assert [e.kind for e in events] == ["waiting", "active", "progress", "log", "completed"]
    ids = [e.id for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert events[2].data["progress"] == 50 and events[3].data["message"] == "half way"
    # resuming from any id gives exactly the later events
    resumed = await backend.events(after=ids[1])
    assert [e.id for e in resumed if e.job_id == new.id] == ids[2:]
    only_job = await backend.events(after=after, job_id=new.id)
    assert [e.id for e in only_job] == ids


async def test_failed_and_retried_events_carry_the_error(backend: Backend) -> None:
    new = new_job()
    await backend.enqueue([new])
    [claim] = (await backend.fetch(["q"], 1, W, LEASE)).claims
    await backend.settle([done(new.id, claim.token, Outcome.FAILED,
                               error={"type": "KeyError", "message": "k"})])
    events = await backend.events(after=0, job_id=new.id)
    assert events[-1].kind == "failed"
    assert "KeyError" in str(events[-1].data.get("error"))


async def test_bulk_enqueue_is_all_or_nothing_per_call(backend: Backend) -> None:
    jobs = [new_job() for _ in range(500)]
    stored = await backend.enqueue(jobs)
    assert len(stored) == 500 and all(s.created for s in stored)
    [info] = [q for q in await backend.queues() if q.name == "q"]
    assert info.counts[JobState.WAITING] == 500


async def test_list_jobs_pages_newest_first_with_a_cursor(backend: Backend) -> None:
    jobs = [new_job() for _ in range(7)]
    for j in jobs:
        await backend.enqueue([j])
    page1 = await backend.list_jobs(JobFilter(queue="q"), limit=4)
    assert [j.id for j in page1.jobs] == [j.id for j in reversed(jobs)][:4]
    assert page1.next_cursor is not None
    page2 = await backend.list_jobs(JobFilter(queue="q"), limit=4, cursor=page1.next_cursor)
    assert [j.id for j in page2.jobs] == [j.id for j in reversed(jobs)][4:]
    assert page2.next_cursor is None


async def test_list_jobs_filters_by_state_task_and_text(backend: Backend) -> None:
    a = new_job(task="alpha", kwargs_json='{"email": "ana@example.com"}')
    b = new_job(task="beta")
    await backend.enqueue([a, b])
    await backend.fetch(["q"], 1, W, LEASE)  # a becomes active (first in)
    assert [j.id for j in (await backend.list_jobs(JobFilter(states=(JobState.ACTIVE,)))).jobs] \
        == [a.id]
    assert [j.id for j in (await backend.list_jobs(JobFilter(task="beta"))).jobs] == [b.id]
    found = await backend.list_jobs(JobFilter(search="ana@example"))
    assert [j.id for j in found.jobs] == [a.id]
    assert [j.id for j in (await backend.list_jobs(JobFilter(search=b.id))).jobs] == [b.id]


async def test_search_finds_a_job_by_a_piece_of_its_id(backend: Backend) -> None:
    a, b = new_job(), new_job()
    await backend.enqueue([a, b])
    for piece in (a.id[-12:], a.id[:30], a.id[10:20].upper()):
        found = await backend.list_jobs(JobFilter(search=piece))
        assert [j.id for j in found.jobs] == [a.id], piece
