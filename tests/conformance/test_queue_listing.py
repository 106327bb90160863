"""Which queues a backend lists: a queue exists by having jobs or by being paused, so a
queue paused ahead of its first job shows, and once resumed while empty it is gone (no
phantom queue from a typo stays in every listing)."""

from __future__ import annotations

from conveyor.backends.base import Backend, JobFilter
from conveyor.jobs import JobState

from .conftest import new_job


async def names(backend: Backend) -> list[str]:
    return [q.name for q in await backend.queues()]


async def test_an_empty_queue_is_listed_while_paused_and_gone_once_resumed(
        backend: Backend) -> None:
    await backend.set_paused("ahead", True)
    [info] = [q for q in await backend.queues() if q.name == "ahead"]
    assert info.paused and sum(info.counts.values()) == 0
    await backend.set_paused("ahead", False)
    assert "ahead" not in await names(backend)


async def test_a_queue_with_jobs_is_listed_paused_or_not(backend: Backend) -> None:
    job = new_job("busy")
    await backend.enqueue([job])
    await backend.set_paused("busy", True)
    await backend.set_paused("busy", False)
    [info] = [q for q in await backend.queues() if q.name == "busy"]
    assert not info.paused and info.counts[JobState.WAITING] == 1
    await backend.remove(JobFilter(ids=(job.id,)))
    assert "busy" not in await names(backend)
