"""Delays, dedup, leases and rescue, operator actions, retention, locks and workers."""

from __future__ import annotations

import asyncio
import time

import pytest

from conveyor.backends.base import (
    Backend,
    JobFilter,
    LeaseStatus,
    Outcome,
    Retention,
    Settlement,
    WorkerInfo,
)
from conveyor.errors import InvalidRequestError
from conveyor.jobs import JobState

from .conftest import new_job

W = "worker-1"
LEASE = 30_000


async def test_delayed_job_waits_until_due(backend: Backend) -> None:
    new = new_job(delay_ms=300)
    [stored] = await backend.enqueue([new])
    assert stored.job.state is JobState.DELAYED
    fetched = await backend.fetch(["q"], 1, W, LEASE)
    assert fetched.claims == [] and fetched.next_due_in_ms is not None
    assert fetched.next_due_in_ms <= 300
    await asyncio.sleep(0.4)
    assert [c.job.id for c in (await backend.fetch(["q"], 1, W, LEASE)).claims] == [new.id]


async def test_run_at_in_the_past_is_due_now(backend: Backend) -> None:
    new = new_job(run_at_ms=int(time.time() * 1000) - 60_000)
    [stored] = await backend.enqueue([new])
    assert stored.job.state is JobState.WAITING


async def test_same_key_returns_the_first_job(backend: Backend) -> None:
    first = new_job(key="email:42", kwargs_json='{"v": 1}')
    second = new_job(key="email:42", kwargs_json='{"v": 2}')
    [a] = await backend.enqueue([first])
    [b] = await backend.enqueue([second])
    assert a.created and not b.created
    assert b.job.id == first.id and b.job.kwargs == {"v": 1}
    assert await backend.get(second.id) is None
    # also within one bulk call
    third, fourth = new_job(key="k2"), new_job(key="k2")
    stored = await backend.enqueue([third, fourth])
    assert [s.created for s in stored] == [True, False]
    assert stored[1].job.id == third.id


async def test_concurrent_claimers_never_share_a_job(backend_url: str, backend: Backend) -> None:
    from conveyor.backends import backend_for

    jobs = [new_job() for _ in range(300)]
    await backend.enqueue(jobs)
    claimers = [backend_for(backend_url) for _ in range(4)]
    for c in claimers:
        await c.open()

    async def claim_all(b: Backend, name: str) -> list[str]:
        got: list[str] = []
        while True:
            fetched = await b.fetch(["q"], 7, name, LEASE)
            if not fetched.claims:
                return got
            got += [c.job.id for c in fetched.claims]
            await asyncio.sleep(0)

    try:
        results = await asyncio.gather(*(claim_all(b, f"w{i}") for i, b in
                                         enumerate(claimers)))
    finally:
        for c in claimers:
            await c.close()
    claimed = [job_id for r in results for job_id in r]
    assert len(claimed) == len(set(claimed)) == 300


async def test_expired_lease_is_rescued_once_then_fails_past_max_stalls(
        backend: Backend) -> None:
    new = new_job(max_stalls=1)
    await backend.enqueue([new])
    [c1] = (await backend.fetch(["q"], 1, "dead-worker", 200)).claims
    assert await backend.rescue() == []  # not expired yet
    await asyncio.sleep(0.3)
    assert await backend.rescue() == [new.id]
    job = await backend.get(new.id)
    assert job is not None and job.state is JobState.WAITING
    assert job.stalls == 1 and job.attempt == 0
    assert job.errors[-1]["type"] == "Stalled"
    # the old lease is fenced off
    assert await backend.settle([Settlement(new.id, c1.token, Outcome.COMPLETED)]) == [False]
    [c2] = (await backend.fetch(["q"], 1, "dead-worker", 200)).claims
    assert c2.job.attempt == 1
    await asyncio.sleep(0.3)
    assert await backend.rescue() == [new.id]
    job = await backend.get(new.id)
    assert job is not None and job.state is JobState.FAILED
    assert "max_stalls" in job.errors[-1]["message"]


async def test_heartbeat_keeps_a_lease_alive(backend: Backend) -> None:
    new = new_job()
    await backend.enqueue([new])
    [claim] = (await backend.fetch(["q"], 1, W, 300)).claims
    info = WorkerInfo(W, "host", 1, ("q",), 1)
    for _ in range(4):
        await asyncio.sleep(0.15)
        assert await backend.heartbeat(info, [claim.lease], 300) == [LeaseStatus.HELD]
        assert await backend.rescue() == []


async def test_cancel_waiting_and_delayed_jobs_at_once(backend: Backend) -> None:
    waiting, delayed = new_job(), new_job(delay_ms=60_000)
    await backend.enqueue([waiting, delayed])
    ids = await backend.cancel(JobFilter(ids=(waiting.id, delayed.id)))
    assert sorted(ids) == sorted([waiting.id, delayed.id])
    for job_id in ids:
        job = await backend.get(job_id)
        assert job is not None and job.state is JobState.CANCELLED
    assert (await backend.fetch(["q"], 5, W, LEASE)).claims == []


async def test_cancel_of_running_job_reaches_its_worker(backend: Backend) -> None:
    new = new_job()
    await backend.enqueue([new])
    [claim] = (await backend.fetch(["q"], 1, W, LEASE)).claims
    assert await backend.cancel(JobFilter(ids=(new.id,))) == [new.id]
    info = WorkerInfo(W, "host", 1, ("q",), 1)
    assert await backend.heartbeat(info, [claim.lease], LEASE) == [
        LeaseStatus.CANCEL_REQUESTED]
    assert await backend.settle([Settlement(new.id, claim.token, Outcome.CANCELLED)]) == [True]
    job = await backend.get(new.id)
    assert job is not None and job.state is JobState.CANCELLED


async def test_expired_job_with_pending_cancel_ends_cancelled(backend: Backend) -> None:
    new = new_job()
    await backend.enqueue([new])
    await backend.fetch(["q"], 1, W, 150)
    await backend.cancel(JobFilter(ids=(new.id,)))
    await asyncio.sleep(0.25)
    assert await backend.rescue() == [new.id]
    job = await backend.get(new.id)
    assert job is not None and job.state is JobState.CANCELLED


async def test_finished_jobs_cannot_be_cancelled(backend: Backend) -> None:
    new = new_job()
    await backend.enqueue([new])
    [claim] = (await backend.fetch(["q"], 1, W, LEASE)).claims
    await backend.settle([Settlement(new.id, claim.token, Outcome.COMPLETED)])
    assert await backend.cancel(JobFilter(ids=(new.id,))) == []


async def test_retry_replays_failed_jobs_with_fresh_attempts(backend: Backend) -> None:
    new = new_job(max_attempts=1)
    await backend.enqueue([new])
    [claim] = (await backend.fetch(["q"], 1, W, LEASE)).claims
    await backend.settle([Settlement(new.id, claim.token, Outcome.FAILED,
                                     error={"type": "E", "message": "x"})])
    assert await backend.retry(JobFilter(queue="q", states=(JobState.FAILED,))) == [new.id]
    job = await backend.get(new.id)
    assert job is not None and job.state is JobState.WAITING
    assert job.attempt == 0 and len(job.errors) == 1  # history kept
    [again] = (await backend.fetch(["q"], 1, W, LEASE)).claims
    assert again.job.attempt == 1
    assert await backend.retry(JobFilter(ids=(new.id,))) == []  # active: not retryable


async def test_promote_makes_a_delayed_job_due(backend: Backend) -> None:
    new = new_job(delay_ms=3_600_000)
    await backend.enqueue([new])
    assert await backend.promote(JobFilter(ids=(new.id,))) == [new.id]
    assert [c.job.id for c in (await backend.fetch(["q"], 1, W, LEASE)).claims] == [new.id]


async def test_remove_leaves_a_tombstone_and_spares_active_jobs(backend: Backend) -> None:
    gone, running = new_job(), new_job()
    await backend.enqueue([running])
    await backend.fetch(["q"], 1, W, LEASE)
    await backend.enqueue([gone])
    assert await backend.remove(JobFilter(ids=(gone.id, running.id))) == [gone.id]
    assert await backend.get(gone.id) is None
    assert await backend.tombstone(gone.id) is not None
    assert await backend.get(running.id) is not None


async def test_paused_queue_is_not_claimed_until_resumed(backend: Backend) -> None:
    new = new_job()
    await backend.enqueue([new])
    await backend.set_paused("q", True)
    assert (await backend.fetch(["q"], 1, W, LEASE)).claims == []
    [info] = [q for q in await backend.queues() if q.name == "q"]
    assert info.paused and info.counts[JobState.WAITING] == 1
    assert await backend.paused_queues() == {"q"}
    await backend.set_paused("q", False)
    assert await backend.paused_queues() == set()
    assert [c.job.id for c in (await backend.fetch(["q"], 1, W, LEASE)).claims] == [new.id]


async def test_queue_counts_cover_every_state(backend: Backend) -> None:
    jobs = [new_job() for _ in range(4)]
    await backend.enqueue(jobs)
    await backend.enqueue([new_job(delay_ms=60_000)])
    c1, c2, c3 = (await backend.fetch(["q"], 3, W, LEASE)).claims
    await backend.settle([
        Settlement(c1.job.id, c1.token, Outcome.COMPLETED),
        Settlement(c2.job.id, c2.token, Outcome.FAILED, error={"type": "E", "message": "x"}),
    ])
    await backend.cancel(JobFilter(ids=(jobs[3].id,)))
    [info] = [q for q in await backend.queues() if q.name == "q"]
    assert info.counts == {JobState.WAITING: 0, JobState.DELAYED: 1, JobState.ACTIVE: 1,
                           JobState.WAITING_CHILDREN: 0,
                           JobState.COMPLETED: 1, JobState.FAILED: 1, JobState.CANCELLED: 1}
    assert c3.job.state is JobState.ACTIVE


async def test_oldest_waiting_age_is_reported(backend: Backend) -> None:
    await backend.enqueue([new_job()])
    [info] = [q for q in await backend.queues() if q.name == "q"]
    assert info.oldest_waiting_at is not None
    assert abs(info.oldest_waiting_at - await backend.now()) < 5_000


async def test_retention_prunes_by_count_and_leaves_tombstones(backend: Backend) -> None:
    jobs = [new_job() for _ in range(5)]
    await backend.enqueue(jobs)
    claims = (await backend.fetch(["q"], 5, W, LEASE)).claims
    await backend.settle([Settlement(c.job.id, c.token, Outcome.COMPLETED) for c in claims])
    pruned = await backend.prune(Retention(completed_max_count=2))
    assert pruned.jobs == 3
    remaining = (await backend.list_jobs(JobFilter(queue="q"))).jobs
    assert len(remaining) == 2
    removed = {j.id for j in jobs} - {j.id for j in remaining}
    for job_id in removed:
        assert await backend.tombstone(job_id) is not None


async def test_retention_prunes_by_age_and_keeps_failed_longer(backend: Backend) -> None:
    ok, bad = new_job(), new_job(max_attempts=1)
    await backend.enqueue([ok, bad])
    c1, c2 = (await backend.fetch(["q"], 2, W, LEASE)).claims
    await backend.settle([
        Settlement(c1.job.id, c1.token, Outcome.COMPLETED),
        Settlement(c2.job.id, c2.token, Outcome.FAILED, error={"type": "E", "message": "x"}),
    ])
    await asyncio.sleep(0.05)
    pruned = await backend.prune(Retention(completed_max_age_ms=10, failed_max_age_ms=60_000))
    assert pruned.jobs == 1
    assert await backend.get(c1.job.id if c1.job.id == ok.id else c2.job.id) is None
    assert await backend.get(bad.id) is not None


async def test_event_ids_keep_growing_after_pruning(backend: Backend) -> None:
    await backend.enqueue([new_job() for _ in range(3)])
    before = (await backend.events(after=0, limit=10_000))[-1].id
    await asyncio.sleep(0.05)
    await backend.prune(Retention(events_max_age_ms=1))
    await backend.enqueue([new_job()])
    latest = await backend.events(after=before)
    assert latest and all(e.id > before for e in latest)


async def test_try_lock_is_exclusive_until_it_expires(backend: Backend) -> None:
    assert await backend.try_lock("maintenance", "a", 200)
    assert not await backend.try_lock("maintenance", "b", 200)
    assert await backend.try_lock("maintenance", "a", 200)  # renewal by the holder
    await asyncio.sleep(0.3)
    assert await backend.try_lock("maintenance", "b", 200)


async def test_heartbeat_registers_workers_and_unregister_forgets(backend: Backend) -> None:
    info = WorkerInfo("w-x", "host-1", 4242, ("q", "r"), 8, in_flight=3)
    await backend.heartbeat(info, [], LEASE)
    [seen] = [w for w in await backend.workers() if w.id == "w-x"]
    assert (seen.host, seen.pid, seen.queues, seen.concurrency, seen.in_flight) == (
        "host-1", 4242, ("q", "r"), 8, 3)
    assert seen.last_seen_at is not None and seen.started_at is not None
    assert seen.group is None
    await backend.unregister_worker("w-x")
    assert [w for w in await backend.workers() if w.id == "w-x"] == []


async def test_the_workers_of_a_group_come_back_with_their_group(backend: Backend) -> None:
    for pid in (11, 12):
        await backend.heartbeat(WorkerInfo(f"w-{pid}", "h", pid, ("q",), 2, group="h:10:ab"),
                                [], LEASE)
    grouped = {w.pid: w.group for w in await backend.workers() if w.id in ("w-11", "w-12")}
    assert grouped == {11: "h:10:ab", 12: "h:10:ab"}


async def test_bad_cursor_is_a_clear_error(backend: Backend) -> None:
    with pytest.raises(InvalidRequestError):
        await backend.list_jobs(JobFilter(), cursor="!!not-a-cursor!!")


async def test_wait_for_work_returns_when_work_arrives(backend_url: str,
                                                       backend: Backend) -> None:
    if not backend.capabilities.blocking_wakeup:
        pytest.skip("backend has no blocking wake-up")
    from conveyor.backends import backend_for

    waiter = backend_for(backend_url)
    await waiter.open()
    try:
        await waiter.wait_for_work(["q"], 0.01)  # set up the subscription
        started = time.monotonic()

        async def later() -> None:
            await asyncio.sleep(0.1)
            await backend.enqueue([new_job()])

        task = asyncio.create_task(later())
        await waiter.wait_for_work(["q"], 10.0)
        await task
        assert time.monotonic() - started < 5.0  # woken by the enqueue, not the timeout
    finally:
        await waiter.close()


async def test_an_idle_claim_takes_work_that_arrives_while_it_waits(backend_url: str,
                                                                   backend: Backend) -> None:
    if not backend.capabilities.blocking_wakeup:
        pytest.skip("backend has no blocking wake-up")
    from conveyor.backends import backend_for

    waiter = backend_for(backend_url)
    await waiter.open()
    try:
        await waiter.wait_for_work(["q"], 0.01)  # set up the subscription
        assert (await waiter.fetch(["q"], 5, W, LEASE)).claims == []  # idle
        claim = asyncio.create_task(
            waiter.fetch_when_ready(["q"], 5, W, LEASE, 10.0, asyncio.Event()))
        await asyncio.sleep(0.1)
        job = new_job()
        started = time.monotonic()
        await backend.enqueue([job])
        fetched = await claim
        assert time.monotonic() - started < 5.0  # woken by the enqueue, not the timeout
        assert [c.job.id for c in fetched.claims] == [job.id]
        assert fetched.claims[0].job.state is JobState.ACTIVE
        stored = await backend.get(job.id)
        assert stored is not None and stored.state is JobState.ACTIVE and stored.worker == W
    finally:
        await waiter.close()


async def test_an_idle_claim_ends_on_interrupt_or_timeout_with_nothing(
        backend: Backend) -> None:
    assert (await backend.fetch(["q"], 5, W, LEASE)).claims == []
    stop = asyncio.Event()
    claim = asyncio.create_task(backend.fetch_when_ready(["q"], 5, W, LEASE, 30.0, stop))
    await asyncio.sleep(0.1)
    assert not claim.done()
    stop.set()
    done, _ = await asyncio.wait({claim}, timeout=10.0)  # far below its 30 s
    assert done and claim.result().claims == []
    fetched = await backend.fetch_when_ready(["q"], 5, W, LEASE, 0.2, asyncio.Event())
    assert fetched.claims == [] and fetched.settled == []


async def test_keys_are_scoped_to_their_queue(backend: Backend) -> None:
    [a] = await backend.enqueue([new_job("emails", key="user:1")])
    [b] = await backend.enqueue([new_job("reports", key="user:1")])
    [again] = await backend.enqueue([new_job("emails", key="user:1")])
    assert a.created and b.created and a.job.id != b.job.id
    assert not again.created and again.job.id == a.job.id
