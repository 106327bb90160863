"""Retention keeps pace with any write rate: one maintenance pass (`prune_pass`) removes
whatever is due in as many batches as it takes, and tombstones are capped by count."""

from __future__ import annotations

import asyncio

from conveyor.backends.base import Backend, JobFilter, Outcome, Retention, Settlement
from conveyor.jobs import JobState

from .conftest import new_job

W = "worker-1"
LEASE = 30_000
N = 300
KEEP_COMPLETED = 10
KEEP_TOMBSTONES = 25


async def run_all(backend: Backend, n: int) -> list[str]:
    jobs = [new_job() for _ in range(n)]
    await backend.enqueue(jobs)
    fetched = await backend.fetch(["q"], n, W, LEASE)
    assert len(fetched.claims) == n
    done = await backend.settle([Settlement(c.job.id, c.token, Outcome.COMPLETED, "1")
                                 for c in fetched.claims])
    assert all(done)
    return [j.id for j in jobs]


async def test_one_pass_with_zero_retention_leaves_only_what_the_caps_allow(
        backend: Backend) -> None:
    ids = await run_all(backend, N)
    await asyncio.sleep(0.01)  # every event is now older than "zero" age
    retention = Retention(
        completed_max_age_ms=365 * 24 * 3600 * 1000, completed_max_count=KEEP_COMPLETED,
        events_max_age_ms=0, tombstones_max_count=KEEP_TOMBSTONES,
        batch=40, pass_seconds=120)  # N is many batches: the pass must loop
    pruned = await backend.prune_pass(retention)
    assert not pruned.more
    assert pruned.jobs == N - KEEP_COMPLETED
    left = await backend.list_jobs(JobFilter(states=(JobState.COMPLETED,)), limit=1000)
    assert len(left.jobs) == KEEP_COMPLETED
    tombstones = [i for i in ids if await backend.tombstone(i) is not None]
    assert len(tombstones) == KEEP_TOMBSTONES
    assert len(await backend.events(after=0, limit=10_000)) <= 1  # the newest may stay
    assert await backend.event_head() > 0  # ids keep growing from where they were


async def test_a_pass_out_of_time_says_more_is_due(backend: Backend) -> None:
    await run_all(backend, 60)
    retention = Retention(completed_max_count=0, batch=10, pass_seconds=0)
    first = await backend.prune_pass(retention)
    assert first.more and 0 < first.jobs < 60
    rest = await backend.prune_pass(Retention(completed_max_count=0, batch=10,
                                              pass_seconds=120))
    assert not rest.more and first.jobs + rest.jobs == 60
