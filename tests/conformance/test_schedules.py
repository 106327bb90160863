"""The schedule verbs on every backend: save, read, fire (exactly once per tick, overlap,
misfire, expiry) and delete; plus several schedulers racing on one store."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter

from conveyor.backends import backend_for
from conveyor.backends.base import Backend, JobFilter, Outcome, Settlement
from conveyor.backends.schedules import Firing, ScheduleRecord
from conveyor.jobs import JobState
from conveyor.schedules.planner import plan
from conveyor.schedules.runner import Scheduler
from conveyor.schedules.spec import ScheduleSpec, build, tick_key

from .conftest import new_job

W = "worker-1"
LEASE = 30_000


def spec(name: str = "s", queue: str = "q", **options: object) -> ScheduleSpec:
    options.setdefault("every", "1s")
    return build(name, new_job(queue, task="t", kwargs_json='{"n": 1}'), **options)  # type: ignore[arg-type]


async def stored(backend: Backend, s: ScheduleSpec, next_run_at: int | None = None,
                 origin: str = "code") -> ScheduleRecord:
    now = await backend.now()
    first = s.first_run_after(now) if next_run_at is None else next_run_at
    record = await backend.save_schedule(s.record(origin, first, 0))
    assert record is not None
    return record


async def by_name(backend: Backend, name: str) -> ScheduleRecord:
    [record] = [r for r in await backend.schedules() if r.name == name]
    return record


async def test_a_saved_schedule_reads_back_and_names_are_unique(backend: Backend) -> None:
    s = spec(overlap="allow")
    record = await stored(backend, s)
    assert (record.name, record.queue, record.task, record.overlap) == ("s", "q", "t", "allow")
    assert ScheduleSpec.from_record(record) == s and record.version >= 1
    assert await backend.save_schedule(s.record("api", 1, 0)) is None  # name taken
    stale = await backend.save_schedule(s.record("code", 5, record.version + 7))
    assert stale is None
    changed = await backend.save_schedule(s.record("code", 5, record.version))
    assert changed is not None and changed.next_run_at == 5
    assert changed.version > record.version
    assert [r.name for r in await backend.schedules()] == ["s"]


async def test_a_tick_is_enqueued_once_under_its_key(backend: Backend) -> None:
    s = spec(overlap="allow")
    now = await backend.now()
    record = await stored(backend, s, next_run_at=now - 10)
    decided = plan(record, s, now)
    assert decided.firing is not None
    [fired] = await backend.fire_schedules([decided.firing])
    assert fired.applied and len(fired.job_ids) == 1
    job = await backend.get(fired.job_ids[0])
    assert job is not None and job.task == "t" and job.kwargs == {"n": 1}
    assert job.key == tick_key("s", now - 10) and job.meta["schedule"] == "s"
    # the same decision again (a second scheduler with the same read) changes nothing
    [again] = await backend.fire_schedules([decided.firing])
    assert not again.applied
    after = await by_name(backend, "s")
    assert after.last_job_id == job.id and after.last_tick_at == now - 10
    assert after.next_run_at is not None and after.next_run_at > now
    assert after.enqueued == 1 and after.last_job_state is JobState.WAITING


async def test_a_tick_not_yet_due_by_the_backend_clock_is_refused(backend: Backend) -> None:
    s = spec()
    record = await stored(backend, s)
    assert record.next_run_at is not None
    early = Firing(name="s", queue="q", version=record.version,
                   jobs=[(record.next_run_at + 60_000, s.job_for(record.next_run_at))],
                   next_run_at=record.next_run_at + 61_000)
    [fired] = await backend.fire_schedules([early])
    assert not fired.applied
    assert (await backend.list_jobs(JobFilter())).jobs == []


async def test_overlap_skip_holds_ticks_back_while_the_last_run_is_unfinished(
        backend: Backend) -> None:
    s = spec(overlap="skip")
    now = await backend.now()
    await stored(backend, s, next_run_at=now - 2000)
    record = await by_name(backend, "s")
    decided = plan(record, s, now - 1500)  # one tick (now - 2000) due then
    assert decided.firing is not None
    [first] = await backend.fire_schedules([decided.firing])
    claim = (await backend.fetch(["q"], 1, W, LEASE)).claims[0]  # the run is active
    record = await by_name(backend, "s")
    decided = plan(record, s, now)
    assert decided.firing is not None
    held_back = len(decided.firing.jobs)
    [second] = await backend.fire_schedules([decided.firing])
    assert held_back >= 1 and second.applied and second.job_ids == []
    assert second.skipped_overlap == held_back
    await backend.settle([Settlement(claim.job.id, claim.token, Outcome.COMPLETED, "null")])
    record = await by_name(backend, "s")
    assert record.skipped_overlap == held_back and record.last_job_id == first.job_ids[0]
    assert record.last_job_state is JobState.COMPLETED and record.last_success_at is not None


async def test_overlap_queue_buffers_one_tick_until_the_run_finishes(backend: Backend) -> None:
    s = spec(overlap="queue", misfire="all", misfire_grace="0s")
    now = await backend.now()
    await stored(backend, s, next_run_at=now - 2500)
    record = await by_name(backend, "s")
    decided = plan(record, s, now - 2400)
    assert decided.firing is not None
    [first] = await backend.fire_schedules([decided.firing])
    claim = (await backend.fetch(["q"], 1, W, LEASE)).claims[0]
    record = await by_name(backend, "s")
    decided = plan(record, s, now)  # two or three more ticks: the latest is buffered
    assert decided.firing is not None
    [held] = await backend.fire_schedules([decided.firing])
    assert held.buffered and held.job_ids == []
    assert held.skipped_overlap == len(decided.firing.jobs) - 1 >= 1
    record = await by_name(backend, "s")
    assert record.pending_tick_at == now // 1000 * 1000  # the latest tick (epoch-aligned)
    assert plan(record, s, now).firing is None  # still running: nothing to release
    await backend.settle([Settlement(claim.job.id, claim.token, Outcome.COMPLETED, "null")])
    record = await by_name(backend, "s")
    decided = plan(record, s, now)
    assert decided.firing is not None
    [released] = await backend.fire_schedules([decided.firing])
    assert len(released.job_ids) == 1 and released.job_ids != first.job_ids
    job = await backend.get(released.job_ids[0])
    assert job is not None and job.key == tick_key("s", now // 1000 * 1000)
    assert (await by_name(backend, "s")).pending_tick_at is None


async def test_misfire_policies_after_five_missed_ticks(backend: Backend) -> None:
    now = await backend.now() // 1000 * 1000 - 500  # half-way between two ticks
    expected = {"skip": 0, "once": 1, "all": 5}
    for policy, count in expected.items():
        s = spec(policy, queue=f"q{policy}", misfire=policy, misfire_grace="0s",
                 overlap="allow")
        first = s.first_run_after(now - 5000)
        assert first is not None
        record = await stored(backend, s, next_run_at=first)
        decided = plan(record, s, now)
        assert decided.firing is not None
        [fired] = await backend.fire_schedules([decided.firing])
        assert len(fired.job_ids) == count, policy
        after = await by_name(backend, policy)
        assert after.skipped_misfire == 5 - count
        assert after.next_run_at is not None and after.next_run_at > now
    capped = spec("capped", queue="qc", misfire="all", catch_up=3, misfire_grace="0s",
                  overlap="allow")
    record = await stored(backend, capped, next_run_at=capped.first_run_after(now - 5000))
    decided = plan(record, capped, now)
    assert decided.firing is not None
    [fired] = await backend.fire_schedules([decided.firing])
    assert len(fired.job_ids) == 3  # the latest three


async def test_an_expired_run_is_cancelled_with_its_reason(backend: Backend) -> None:
    s = spec(expires="1s", overlap="allow")
    now = await backend.now()
    record = await stored(backend, s, next_run_at=now - 3000)
    decided = plan(record, s, now - 2990)
    assert decided.firing is not None
    [first] = await backend.fire_schedules([decided.firing])
    record = await by_name(backend, "s")
    decided = plan(record, s, now)
    assert decided.firing is not None and decided.firing.expire_job_id == first.job_ids[0]
    [fired] = await backend.fire_schedules([decided.firing])
    assert fired.expired
    job = await backend.get(first.job_ids[0])
    assert job is not None and job.state is JobState.CANCELLED
    assert job.errors[-1]["type"] == "ScheduleExpired"
    assert "not started within 1s" in job.errors[-1]["message"]
    assert (await by_name(backend, "s")).expired == 1


async def test_a_deleted_schedule_is_gone_and_its_jobs_stay(backend: Backend) -> None:
    s = spec(overlap="allow")
    now = await backend.now()
    record = await stored(backend, s, next_run_at=now - 10)
    decided = plan(record, s, now)
    assert decided.firing is not None
    [fired] = await backend.fire_schedules([decided.firing])
    assert await backend.delete_schedule("s")
    assert not await backend.delete_schedule("s")
    assert await backend.schedules() == []
    assert await backend.get(fired.job_ids[0]) is not None


async def test_racing_schedulers_enqueue_every_tick_exactly_once(backend_url: str,
                                                                 backend: Backend) -> None:
    every = spec("every", every="200ms", overlap="allow", misfire="all")
    cron = spec("cron", queue="qc", every=None, cron="* * * * * *", overlap="allow",
                misfire="all")
    for s in (every, cron):
        await stored(backend, s)
    schedulers = [Scheduler() for _ in range(3)]
    backends = [backend_for(backend_url) for _ in schedulers]
    for b in backends:
        await b.open()
    try:
        deadline = await backend.now() + 2300
        while await backend.now() < deadline:
            await asyncio.gather(*(s.round(b) for s, b in zip(schedulers, backends,
                                                                strict=True)))
            await asyncio.sleep(0.02)
    finally:
        for b in backends:
            await b.close()
    jobs = (await backend.list_jobs(JobFilter(), limit=1000)).jobs
    ledger = Counter((j.meta["schedule"], j.meta["tick"]) for j in jobs)
    assert ledger and max(ledger.values()) == 1
    ticks = sorted(j.key or "" for j in jobs if j.meta["schedule"] == "every")
    assert len(ticks) >= 10
    times = sorted(int(k.rsplit(":", 1)[1]) for k in ticks)
    assert all(b - a == 200 for a, b in itertools.pairwise(times))  # no gap
    assert sum(1 for j in jobs if j.meta["schedule"] == "cron") >= 2
    assert sum(r.enqueued for r in await backend.schedules()) == len(jobs)




async def test_the_scheduler_sleeps_until_the_next_tick_not_a_fixed_period(
        backend: Backend) -> None:
    s = spec(every="10s")
    now = await backend.now()
    due = now + 300
    await stored(backend, s, next_run_at=due)
    pause = await Scheduler().round(backend)
    assert 0 < pause <= (due - now) / 1000  # wakes for the tick, not after a poll period
    assert (await backend.list_jobs(JobFilter())).jobs == []


async def test_jitter_delays_each_run_within_its_bound(backend: Backend) -> None:
    s = spec(jitter="5s", overlap="allow")
    now = await backend.now()
    record = await stored(backend, s, next_run_at=now - 10)
    decided = plan(record, s, now)
    assert decided.firing is not None
    [fired] = await backend.fire_schedules([decided.firing])
    job = await backend.get(fired.job_ids[0])
    assert job is not None and now - 10 <= job.scheduled_at <= now - 10 + 5000
