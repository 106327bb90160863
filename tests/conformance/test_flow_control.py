"""Flow control decided inside the claim: rate limits, concurrency caps, RateLimited
pauses, fair turns between keys, runtime changes, and why a job is waiting.

Skipped on backends without `capabilities.flow_control`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from conveyor.backends.base import Backend, JobFilter, Outcome, Settlement, WorkerInfo
from conveyor.flow.spec import Limit, Rate
from conveyor.flow.why import describe, why_waiting
from conveyor.jobs import JobState
from conveyor.serialization import dumps

from .conftest import new_job

W = "worker-1"
LEASE = 30_000
TASK = "task:t"


@pytest.fixture(autouse=True)
def _needs_flow_control(backend: Backend) -> None:
    if not backend.capabilities.flow_control:
        pytest.skip("backend without flow control")


def group(*gates: tuple[str, str, str]) -> str:
    return dumps(sorted([list(g) for g in gates]))


async def declare(backend: Backend, rate: Rate | None = None, concurrency: int | None = None,
                  name: str = TASK, queue: str = "q") -> None:
    await backend.declare_limits([(queue, name, Limit(rate, concurrency).to_json())])


async def enqueue(backend: Backend, n: int, rkey: str = "", ckey: str = "",
                  **fields: Any) -> list[str]:
    jobs = [new_job(flow=group((TASK, rkey, ckey)), **fields) for _ in range(n)]
    await backend.enqueue(jobs)
    return [j.id for j in jobs]


async def claim(backend: Backend, limit: int = 100) -> list[Any]:
    return (await backend.fetch(["q"], limit, W, LEASE)).claims


async def complete(backend: Backend, claims: list[Any]) -> None:
    done = await backend.settle([Settlement(c.job.id, c.token, Outcome.COMPLETED)
                                 for c in claims])
    assert all(done)


async def test_rate_limit_caps_starts_in_the_window(backend: Backend) -> None:
    await declare(backend, rate=Rate(5, 60_000))
    await enqueue(backend, 12)
    first = await claim(backend)
    assert len(first) == 5
    await complete(backend, first)
    fetched = await backend.fetch(["q"], 100, W, LEASE)
    assert fetched.claims == []
    # the idle worker is told when the window lets the next job start
    assert fetched.next_due_in_ms is not None and 0 < fetched.next_due_in_ms <= 60_000


async def test_rate_window_slides_on_the_backend_clock(backend: Backend) -> None:
    await declare(backend, rate=Rate(3, 300))
    await enqueue(backend, 6)
    first = await claim(backend)
    assert len(first) == 3 and await claim(backend) == []
    await asyncio.sleep(0.35)
    second = await claim(backend)
    assert len(second) == 3
    starts = sorted(c.job.started_at for c in first + second)
    assert starts[3] - starts[0] >= 300  # never 4 starts within 300 ms


async def test_each_rate_key_has_its_own_budget(backend: Backend) -> None:
    await declare(backend, rate=Rate(2, 60_000))
    a = await enqueue(backend, 5, rkey="a")
    b = await enqueue(backend, 5, rkey="b")
    claimed = {c.job.id for c in await claim(backend)}
    assert len(claimed & set(a)) == 2 and len(claimed & set(b)) == 2


async def test_concurrency_cap_is_never_exceeded_and_slots_come_back(backend: Backend) -> None:
    await declare(backend, concurrency=3)
    await enqueue(backend, 10)
    first = await claim(backend)
    assert len(first) == 3 and await claim(backend) == []
    await complete(backend, first[:1])
    second = await claim(backend)
    assert len(second) == 1
    [info] = [i for i in await backend.limits() if i.name == TASK]
    assert [(u.key, u.active) for u in info.use] == [("", 3)]


async def test_failed_and_released_jobs_return_their_slots(backend: Backend) -> None:
    await declare(backend, concurrency=1)
    await enqueue(backend, 3)
    [c] = await claim(backend)
    assert await backend.settle([Settlement(c.job.id, c.token, Outcome.FAILED,
                                            error={"type": "E", "message": "x"},
                                            retry_in_ms=None)]) == [True]
    [d] = await claim(backend)
    assert await backend.settle([Settlement(d.job.id, d.token, Outcome.RELEASED)]) == [True]
    [e] = await claim(backend)
    assert e.job.id != c.job.id


async def test_an_expired_lease_gives_its_slot_back(backend: Backend) -> None:
    await declare(backend, concurrency=1)
    await enqueue(backend, 2)
    [held] = (await backend.fetch(["q"], 5, W, 50)).claims
    assert await claim(backend) == []
    await asyncio.sleep(0.1)
    assert await backend.rescue() == [held.job.id]
    assert len(await claim(backend)) == 1


async def test_rate_limited_pauses_only_its_key_without_charging(backend: Backend) -> None:
    await declare(backend, concurrency=10)
    a = await enqueue(backend, 2, rkey="a", ckey="a")
    b = await enqueue(backend, 2, rkey="b", ckey="b")
    first = await claim(backend, 1)
    assert first[0].job.id == a[0]
    assert await backend.settle([Settlement(a[0], first[0].token, Outcome.RATE_LIMITED,
                                            retry_in_ms=60_000)]) == [True]
    job = await backend.get(a[0])
    assert job is not None and job.state is JobState.WAITING and job.attempt == 0
    claimed = {c.job.id for c in await claim(backend)}
    assert claimed == set(b)
    reasons = await backend.flow_blockers(a[1])
    assert [(r["reason"], r["limiter"], r["key"]) for r in reasons] == [("paused", TASK, "a")]


async def test_keys_take_turns(backend: Backend) -> None:
    await declare(backend, concurrency=100_000)
    await enqueue(backend, 200, rkey="A", ckey="A")
    b = await enqueue(backend, 10, rkey="B", ckey="B")
    started: list[str] = []
    for _ in range(20):
        started += [c.job.id for c in await claim(backend, 1)]
    assert set(b) <= set(started)


async def test_a_blocked_key_does_not_block_the_jobs_behind_it(backend: Backend) -> None:
    await declare(backend, concurrency=1)
    a = await enqueue(backend, 3, ckey="a", priority=5)
    b = await enqueue(backend, 2, ckey="b")
    first = [c.job.id for c in await claim(backend)]
    assert first[0] == a[0] and b[0] in first and a[1] not in first


async def test_limits_count_blocked_jobs_under_the_gate_that_holds_them(
        backend: Backend) -> None:
    await declare(backend, concurrency=1, rate=Rate(100, 60_000))
    await declare(backend, Rate(1000, 60_000), name="shared")
    jobs = [new_job(flow=group((TASK, "r", "a"), ("shared", "", ""))) for _ in range(3)]
    await backend.enqueue(jobs)
    assert len(await claim(backend)) == 1
    assert await claim(backend) == []  # the claim finds the group held by the full slot
    found = {i.name: i for i in await backend.limits()}
    assert found[TASK].blocked == {"a": 2}  # the concurrency key, not the rate key "r"
    assert found["shared"].blocked == {}  # it passes the shared limiter: not held there
    assert {u.key: (u.active, u.starts) for u in found[TASK].use} == {"a": (1, 0),
                                                                      "r": (0, 1)}
    await backend.set_limit("q", TASK, Limit(concurrency=5).to_json())
    assert {i.name: i.blocked for i in await backend.limits()}[TASK] == {}  # freed


async def test_higher_priority_starts_first_among_jobs_that_may_start(backend: Backend) -> None:
    await declare(backend, concurrency=100)
    low = await enqueue(backend, 1, ckey="low", priority=0)
    high = await enqueue(backend, 1, ckey="high", priority=10)
    assert [c.job.id for c in await claim(backend)] == high + low


async def test_jobs_without_limits_share_the_queue(backend: Backend) -> None:
    await declare(backend, concurrency=1)
    await enqueue(backend, 3)
    plain = new_job()
    await backend.enqueue([plain])
    claimed = [c.job.id for c in await claim(backend)]
    assert plain.id in claimed and len(claimed) == 2


async def test_a_runtime_change_applies_at_the_next_claim(backend: Backend) -> None:
    await declare(backend, concurrency=1)
    await enqueue(backend, 5)
    assert len(await claim(backend)) == 1
    await backend.set_limit("q", TASK, Limit(concurrency=3).to_json())
    assert len(await claim(backend)) == 2
    [info] = [i for i in await backend.limits() if i.name == TASK]
    assert info.declared == {"rate": None, "concurrency": 1}
    assert info.effective == {"rate": None, "concurrency": 3}
    await backend.set_limit("q", TASK, None)
    assert (await backend.limits())[0].effective == info.declared


async def why(backend: Backend, job_id: str) -> list[str]:
    job = await backend.get(job_id)
    assert job is not None
    return [r["reason"] for r in await why_waiting(backend, job)]


async def test_why_a_job_waits(backend: Backend) -> None:
    await backend.heartbeat(WorkerInfo("w", "h", 1, ("q",), 10), [], LEASE)
    await declare(backend, concurrency=1, rate=Rate(100, 60_000))
    [running, blocked] = await enqueue(backend, 2)
    await claim(backend)
    assert await why(backend, blocked) == ["concurrency_full"]
    reasons = await why_waiting(backend, (await backend.get(blocked)))  # type: ignore[arg-type]
    assert describe(reasons[0]) == "concurrency full (task:t, 1/1)"
    await backend.set_limit("q", TASK, Limit(rate=Rate(1, 60_000)).to_json())
    assert await why(backend, blocked) == ["rate_limited"]
    [delayed] = await enqueue(backend, 1, delay_ms=60_000)
    assert await why(backend, delayed) == ["delayed"]
    await backend.set_paused("q", True)
    assert "queue_paused" in await why(backend, blocked)
    [orphan] = [j.id for j in [new_job("nobody")]]
    await backend.enqueue([new_job("nobody", id=orphan)])
    assert await why(backend, orphan) == ["no_worker"]
    assert running


async def test_a_limit_without_jobs_costs_no_claims(backend: Backend) -> None:
    plain = [new_job() for _ in range(5)]
    await backend.enqueue(plain)
    assert len(await claim(backend)) == 5


async def test_cancelled_and_removed_jobs_leave_their_group_without_a_trace(
        backend: Backend) -> None:
    await declare(backend, concurrency=1)
    gone = await enqueue(backend, 2)
    [kept] = await enqueue(backend, 1)
    assert await backend.cancel(JobFilter(ids=(gone[0],))) == [gone[0]]
    assert await backend.remove(JobFilter(ids=(gone[1],))) == [gone[1]]
    assert [c.job.id for c in await claim(backend)] == [kept]
    await backend.retry(JobFilter(ids=(gone[0],)))  # waiting again, in its group again
    assert await claim(backend) == []  # the slot is still held
    assert (await backend.get(gone[0])).state is JobState.WAITING  # type: ignore[union-attr]


async def test_jobs_waiting_before_the_first_limited_job_still_start(backend: Backend) -> None:
    plain = [new_job() for _ in range(3)]
    await backend.enqueue(plain)
    await declare(backend, concurrency=1)
    limited = await enqueue(backend, 2)
    claimed = {c.job.id for c in await claim(backend)}
    assert claimed == {j.id for j in plain} | {limited[0]}


async def test_delayed_and_retried_jobs_keep_their_gates(backend: Backend) -> None:
    await declare(backend, concurrency=1)
    [later] = await enqueue(backend, 1, delay_ms=1)
    await backend.promote(JobFilter(ids=(later,)))
    [c] = await claim(backend)
    assert c.job.id == later
    assert await backend.settle([Settlement(later, c.token, Outcome.FAILED,
                                            error={"type": "E", "message": "x"},
                                            retry_in_ms=0)]) == [True]
    [again] = await claim(backend)
    assert again.job.id == later and again.job.attempt == 2
    [other] = await enqueue(backend, 1)
    assert await claim(backend) == []  # the retried attempt holds the only slot
    await complete(backend, [again])
    assert [x.job.id for x in await claim(backend)] == [other]


async def test_a_blocked_queue_does_not_stall_a_worker_of_several_queues(
        backend: Backend) -> None:
    await declare(backend, concurrency=1)
    await enqueue(backend, 5, priority=9)
    plain = [new_job("other") for _ in range(3)]
    await backend.enqueue(plain)
    first = (await backend.fetch(["q", "other"], 4, W, LEASE)).claims
    assert len(first) == 4  # one limited job, then the plain ones
    second = (await backend.fetch(["q", "other"], 4, W, LEASE)).claims
    assert second == []


async def test_a_worker_of_several_queues_finds_a_key_behind_many_blocked_ones(
        backend: Backend) -> None:
    await declare(backend, rate=Rate(1, 60_000))
    for i in range(150):
        await enqueue(backend, 2, rkey=f"k{i}")
    assert len(await claim(backend, 150)) == 150  # each key's budget is spent now
    [fresh] = await enqueue(backend, 1, rkey="fresh")
    claimed = (await backend.fetch(["q", "other"], 5, W, LEASE)).claims
    assert [c.job.id for c in claimed] == [fresh]


async def test_rate_limited_without_limits_waits_delayed_uncharged(backend: Backend) -> None:
    plain = new_job()
    await backend.enqueue([plain])
    [c] = await claim(backend)
    assert await backend.settle([Settlement(plain.id, c.token, Outcome.RATE_LIMITED,
                                            retry_in_ms=60_000)]) == [True]
    job = await backend.get(plain.id)
    assert job is not None and job.state is JobState.DELAYED and job.attempt == 0
    started = c.job.started_at
    assert started is not None and job.scheduled_at is not None
    assert job.scheduled_at >= started + 60_000
    assert await claim(backend) == []


async def test_rate_limited_naming_one_limiter_pauses_only_it(backend: Backend) -> None:
    await declare(backend, concurrency=10)
    await declare(backend, Rate(1000, 60_000), name="shared")
    jobs = [new_job(flow=group((TASK, "a", "a"), ("shared", "", ""))) for _ in range(2)]
    others = [new_job(flow=group((TASK, "b", "b"), ("shared", "", ""))) for _ in range(2)]
    await backend.enqueue(jobs + others)
    first = await claim(backend, 1)
    assert await backend.settle([Settlement(first[0].job.id, first[0].token,
                                            Outcome.RATE_LIMITED, retry_in_ms=60_000,
                                            limiter="shared")]) == [True]
    assert await claim(backend) == []  # the shared limiter holds every key now
    reasons = await backend.flow_blockers(others[0].id)
    assert [(r["reason"], r["limiter"]) for r in reasons] == [("paused", "shared")]
