"""Enqueueing the same prepared job again (same id) never makes a second job, whatever
became of the first: the safe retry after an enqueue whose outcome is unknown."""

from __future__ import annotations

from conveyor.backends.base import Backend, JobFilter, Outcome, Settlement
from conveyor.jobs import JobState

from .conftest import new_job

W = "worker-1"
LEASE = 30_000


async def test_the_same_prepared_job_twice_is_one_job(backend: Backend) -> None:
    new = new_job()
    [first] = await backend.enqueue([new])
    [again] = await backend.enqueue([new])
    assert first.created and not again.created
    assert again.job == first.job
    page = await backend.list_jobs(JobFilter())
    assert [j.id for j in page.jobs] == [new.id]
    waiting = [e for e in await backend.events(job_id=new.id) if e.kind == "waiting"]
    assert len(waiting) == 1


async def test_a_repeated_batch_stores_only_what_is_missing(backend: Backend) -> None:
    jobs = [new_job(), new_job(queue="other"), new_job(key="k")]
    [stored] = await backend.enqueue(jobs[:1])
    again = await backend.enqueue(jobs)
    assert [e.created for e in again] == [False, True, True]
    assert again[0].job.id == stored.job.id
    page = await backend.list_jobs(JobFilter())
    assert sorted(j.id for j in page.jobs) == sorted(j.id for j in jobs)


async def test_repeating_an_enqueue_after_the_job_ran_returns_the_finished_job(
        backend: Backend) -> None:
    new = new_job()
    await backend.enqueue([new])
    [claim] = (await backend.fetch(["q"], 1, W, LEASE)).claims
    await backend.settle([Settlement(new.id, claim.token, Outcome.COMPLETED, "1")])
    [again] = await backend.enqueue([new])
    assert not again.created and again.job.state is JobState.COMPLETED
    assert (await backend.fetch(["q"], 1, W, LEASE)).claims == []
