"""The one reader of the event stream (conveyor.stream), on every backend."""

from __future__ import annotations

from conveyor.backends.base import Backend
from conveyor.stream import EventStream
from tests.conformance.conftest import new_job


async def test_head_then_follow_sees_only_what_happens_next(backend: Backend) -> None:
    stream = EventStream(backend, page=4)
    assert await stream.head() == 0
    await backend.enqueue([new_job("s") for _ in range(3)])
    cursor = await stream.head()
    assert [p async for p in stream.follow(cursor)] == []  # nothing after the head
    later = [new_job("s") for _ in range(10)]
    await backend.enqueue(later)
    pages = [p async for p in stream.follow(cursor)]
    assert [len(p) for p in pages] == [4, 4, 2]  # pages of `page` events, then caught up
    seen = [e for p in pages for e in p]
    assert [e.job_id for e in seen] == [j.id for j in later]
    assert [e.id for e in seen] == sorted(e.id for e in seen)


async def test_follow_stops_at_until_and_loads_the_jobs_of_a_page(backend: Backend) -> None:
    stream = EventStream(backend, page=3)
    jobs = [new_job("s") for _ in range(7)]
    await backend.enqueue(jobs)
    everything = await backend.events(after=0, limit=100)
    until = everything[4].id
    pages = [p async for p in stream.follow(0, until=until)]
    assert [e.id for p in pages for e in p] == [e.id for e in everything[:5]]
    found = await stream.jobs_of(everything)
    assert set(found) == {j.id for j in jobs}  # loaded in chunks of `page` ids
    assert found[jobs[0].id].queue == "s"


async def test_since_starts_at_the_first_event_at_or_after_a_time(backend: Backend) -> None:
    stream = EventStream(backend)
    await backend.enqueue([new_job("s") for _ in range(3)])
    middle = await backend.now() + 1
    while await backend.now() <= middle:  # the next events get a later millisecond
        pass
    newer = [new_job("s") for _ in range(2)]
    await backend.enqueue(newer)
    after = await stream.since(middle)
    assert [e.job_id for e in await stream.read(after)] == [j.id for j in newer]
