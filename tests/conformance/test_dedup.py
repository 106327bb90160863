"""Dedup modes and expiry, on every backend (conveyor/dedup.py).

Each mode is a table: a sequence of enqueues, starts, finishes and waits, what each
enqueue must answer (a new job, or the job it folded into) and the jobs left at the end
with their state and arguments. Times are the backend's: a wait sleeps until the
backend's clock has passed the point the mode decides by.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from conveyor import Conveyor, Dedup
from conveyor.backends.base import Backend, JobFilter, Outcome, Settlement
from conveyor.dedup import DedupSpec
from conveyor.flow.why import describe, why_waiting
from conveyor.jobs import Job, JobState

from .conftest import new_job

W = "worker-1"
LEASE = 30_000
TTL = 300
QUIET = 300

Step = tuple[Any, ...]
# name: (spec, steps, the jobs at the end: name -> (state, n))
CASES: dict[str, tuple[DedupSpec, list[Step], dict[str, tuple[str, int]]]] = {
    "until finished": (DedupSpec("t:k", "finished"), [
        ("enqueue", 1, "new", "a"), ("enqueue", 2, "fold", "a"),
        ("start", "a"), ("enqueue", 3, "fold", "a"),  # active still holds the key
        ("finish", "a"), ("enqueue", 4, "new", "b"), ("enqueue", 5, "fold", "b"),
        ("start", "b"), ("fail", "b"), ("enqueue", 6, "new", "c"),
    ], {"a": ("completed", 1), "b": ("failed", 4), "c": ("waiting", 6)}),
    "until started": (DedupSpec("t:k", "started"), [
        ("enqueue", 1, "new", "a"), ("enqueue", 2, "fold", "a"),
        ("start", "a"), ("enqueue", 3, "new", "b"), ("enqueue", 4, "fold", "b"),
    ], {"a": ("active", 1), "b": ("waiting", 3)}),
    "keep last, the copy runs after any end": (DedupSpec("t:k", "keep_last", replace=True), [
        ("enqueue", 1, "new", "a"), ("start", "a"), ("enqueue", 2, "new", "b"),
        ("start", None), ("cancelled", "a"), ("start", "b"),  # any way out of active
    ], {"a": ("cancelled", 1), "b": ("active", 2)}),
    "until started, replace": (DedupSpec("t:k", "started", replace=True), [
        ("enqueue", 1, "new", "a"), ("enqueue", 2, "fold", "a"),
        ("start", "a"), ("enqueue", 3, "new", "b"), ("enqueue", 4, "fold", "b"),
    ], {"a": ("active", 2), "b": ("waiting", 4)}),
    "throttle": (DedupSpec("t:k", "throttle", window_ms=TTL), [
        ("enqueue", 1, "new", "a"), ("start", "a"), ("finish", "a"),
        ("enqueue", 2, "fold", "a"),  # finished, but younger than the ttl
        ("wait_ttl", "a"), ("enqueue", 3, "new", "b"), ("enqueue", 4, "fold", "b"),
    ], {"a": ("completed", 1), "b": ("waiting", 3)}),
    "debounce, replace": (DedupSpec("t:k", "debounce", window_ms=QUIET, replace=True), [
        ("enqueue", 1, "new", "a"), ("enqueue", 2, "fold", "a"), ("enqueue", 3, "fold", "a"),
        ("wait_due", "a"), ("start", "a"), ("enqueue", 4, "new", "b"),
    ], {"a": ("active", 3), "b": ("delayed", 4)}),
    "debounce keeps the first arguments": (DedupSpec("t:k", "debounce", window_ms=QUIET), [
        ("enqueue", 1, "new", "a"), ("enqueue", 2, "fold", "a"),
    ], {"a": ("delayed", 1)}),
    "keep last": (DedupSpec("t:k", "keep_last", replace=True), [
        ("enqueue", 1, "new", "a"), ("enqueue", 2, "fold", "a"), ("start", "a"),
        ("enqueue", 3, "new", "b"), ("enqueue", 4, "fold", "b"),
        ("start", None),  # the copy waits while a runs
        ("enqueue", 5, "fold", "b"), ("finish", "a"), ("enqueue", 6, "fold", "b"),
        ("start", "b"), ("enqueue", 7, "new", "c"), ("fail", "b"), ("start", "c"),
    ], {"a": ("completed", 2), "b": ("failed", 6), "c": ("active", 7)}),
}


def _job(spec: DedupSpec, n: int, queue: str = "q") -> Any:
    delay = spec.window_ms if spec.mode == "debounce" else 0
    return new_job(queue, kwargs_json=f'{{"n": {n}}}', dedup=spec, delay_ms=delay)


async def _get(backend: Backend, job_id: str) -> Job:
    job = await backend.get(job_id)
    assert job is not None
    return job


async def _until_backend_time(backend: Backend, at: int) -> None:
    while await backend.now() <= at:
        await asyncio.sleep(0.02)


async def _run_step(backend: Backend, spec: DedupSpec, step: Step, names: dict[str, str],
                    tokens: dict[str, str]) -> None:
    verb, *rest = step
    if verb == "enqueue":
        n, expect, name = rest
        [done] = await backend.enqueue([_job(spec, n)])
        assert done.created == (expect == "new"), step
        if expect == "new":
            names[name] = done.job.id
        else:
            assert done.job.id == names[name], step
    elif verb == "start":
        claims = (await backend.fetch(["q"], 1, W, LEASE)).claims
        if rest[0] is None:
            assert claims == [], step
            return
        assert [c.job.id for c in claims] == [names[rest[0]]], step
        tokens[rest[0]] = claims[0].token
    elif verb in ("finish", "fail", "cancelled"):
        outcome = {"finish": Outcome.COMPLETED, "fail": Outcome.FAILED,
                   "cancelled": Outcome.CANCELLED}[verb]
        error = None if verb == "finish" else {"type": "E", "message": "m"}
        [ok] = await backend.settle([Settlement(names[rest[0]], tokens[rest[0]], outcome,
                                                "null", error)])
        assert ok, step
    elif verb == "wait_ttl":
        job = await _get(backend, names[rest[0]])
        await _until_backend_time(backend, job.created_at + TTL)
    elif verb == "wait_due":
        job = await _get(backend, names[rest[0]])
        await _until_backend_time(backend, job.scheduled_at)


@pytest.mark.parametrize("case", list(CASES))
async def test_dedup_mode_table(backend: Backend, case: str) -> None:
    spec, steps, expected = CASES[case]
    names: dict[str, str] = {}
    tokens: dict[str, str] = {}
    for step in steps:
        await _run_step(backend, spec, step, names, tokens)
    page = await backend.list_jobs(JobFilter())
    assert len(page.jobs) == len(expected)
    for name, (state, n) in expected.items():
        job = await _get(backend, names[name])
        assert (job.state.value, job.kwargs) == (state, {"n": n}), name


async def test_debounce_pushes_the_due_time_after_the_last_enqueue(backend: Backend) -> None:
    spec = DedupSpec("t:k", "debounce", window_ms=60_000)
    [first] = await backend.enqueue([_job(spec, 1)])
    before = await backend.now()
    [again] = await backend.enqueue([_job(spec, 2)])
    after = await backend.now()
    assert not again.created and again.job.id == first.job.id
    assert before + 60_000 <= again.job.scheduled_at <= after + 60_000
    assert again.job.state is JobState.DELAYED


async def test_debounce_never_waits_past_max_wait(backend: Backend) -> None:
    spec = DedupSpec("t:k", "debounce", window_ms=200, max_wait_ms=300)
    [first] = await backend.enqueue([_job(spec, 1)])
    await _until_backend_time(backend, first.job.created_at + 150)
    [second] = await backend.enqueue([_job(spec, 2)])
    assert second.job.scheduled_at == first.job.created_at + 300  # capped, not now + 200
    await _until_backend_time(backend, first.job.created_at + 300)
    claims = (await backend.fetch(["q"], 5, W, LEASE)).claims
    assert [c.job.id for c in claims] == [first.job.id]


async def test_a_debounced_waiting_job_is_delayed_again(backend: Backend) -> None:
    spec = DedupSpec("t:k", "debounce", window_ms=100)
    [first] = await backend.enqueue([_job(spec, 1)])
    await _until_backend_time(backend, first.job.scheduled_at)
    assert (await backend.fetch(["q"], 0, W, LEASE)).claims == []
    await backend.promote(JobFilter(ids=(first.job.id,)))
    assert (await _get(backend, first.job.id)).state is JobState.WAITING
    [again] = await backend.enqueue([_job(spec, 2)])
    assert again.job.state is JobState.DELAYED and again.job.id == first.job.id
    assert (await backend.fetch(["q"], 5, W, LEASE)).claims == []


async def test_dedup_keys_are_per_queue_and_a_batch_folds_into_itself(
        backend: Backend) -> None:
    spec = DedupSpec("t:k", "finished")
    done = await backend.enqueue([_job(spec, 1), _job(spec, 2), _job(spec, 3, "other")])
    assert [d.created for d in done] == [True, False, True]
    assert done[1].job.id == done[0].job.id
    assert done[2].job.id != done[0].job.id


async def test_a_removed_holder_frees_the_key(backend: Backend) -> None:
    spec = DedupSpec("t:k", "finished")
    [first] = await backend.enqueue([_job(spec, 1)])
    await backend.remove(JobFilter(ids=(first.job.id,)))
    [again] = await backend.enqueue([_job(spec, 2)])
    assert again.created and again.job.id != first.job.id


async def test_key_idempotency_is_unchanged_beside_dedup(backend: Backend) -> None:
    [first] = await backend.enqueue([new_job(key="idem")])
    [again] = await backend.enqueue([new_job(key="idem", expires_ms=60_000)])
    assert not again.created and again.job.id == first.job.id


def test_twenty_threads_with_one_dedup_key_make_one_job(backend_url: str,
                                                        tmp_path: Path) -> None:
    apps = [Conveyor(backend_url) for _ in range(20)]
    for app in apps:
        app.task(name="sync")(_sync)
    barrier = threading.Barrier(20)
    ids: list[str] = []
    created: list[bool] = []

    def enqueue(app: Conveyor) -> None:
        task = app.get_task("sync").options(dedup=Dedup("user:{user}"))
        barrier.wait()
        handle = task.enqueue(user=7)
        ids.append(handle.id)
        created.append(handle.created)

    threads = [threading.Thread(target=enqueue, args=(app,)) for app in apps]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert len(set(ids)) == 1 and sorted(created) == [False] * 19 + [True]
        assert len(apps[0].run_sync(apps[0].backend.list_jobs, JobFilter()).jobs) == 1
    finally:
        for app in apps:
            app.close()


def _sync(user: int) -> None:
    pass


# -- expiry ---------------------------------------------------------------------------------
async def _expired(backend: Backend, job_id: str) -> Job:
    job = await _get(backend, job_id)
    assert job.state is JobState.CANCELLED
    assert job.errors[-1]["reason"] == "expired"
    [cancelled] = [e for e in await backend.events(job_id=job_id) if e.kind == "cancelled"]
    assert "expired" in cancelled.data["error"]
    return job


async def test_a_job_not_started_by_its_expiry_ends_cancelled_as_expired(
        backend: Backend) -> None:
    waiting = new_job(expires_ms=100)
    delayed = new_job(expires_ms=150, delay_ms=50)
    other = new_job()
    await backend.enqueue([waiting, delayed, other])
    start = (await _get(backend, waiting.id)).created_at
    await _until_backend_time(backend, start + 150)
    claims = (await backend.fetch(["q"], 10, W, LEASE)).claims
    assert [c.job.id for c in claims] == [other.id]  # the expired ones never start
    for job_id in (waiting.id, delayed.id):
        job = await _expired(backend, job_id)
        assert job.attempt == 0 and job.started_at is None


async def test_a_job_started_before_its_expiry_runs_to_the_end(backend: Backend) -> None:
    new = new_job(expires_ms=100)
    await backend.enqueue([new])
    [claim] = (await backend.fetch(["q"], 1, W, LEASE)).claims
    await _until_backend_time(backend, claim.job.created_at + 150)
    assert (await backend.fetch(["q"], 1, W, LEASE)).claims == []
    [ok] = await backend.settle([Settlement(new.id, claim.token, Outcome.COMPLETED, "1")])
    assert ok and (await _get(backend, new.id)).state is JobState.COMPLETED


async def test_a_job_not_yet_expired_is_claimed(backend: Backend) -> None:
    new = new_job(expires_ms=600_000)
    await backend.enqueue([new])
    claims = (await backend.fetch(["q"], 1, W, LEASE)).claims
    assert [c.job.id for c in claims] == [new.id]


async def test_a_retried_expired_job_runs(backend: Backend) -> None:
    new = new_job(expires_ms=50)
    await backend.enqueue([new])
    await _until_backend_time(backend, (await _get(backend, new.id)).created_at + 100)
    assert (await backend.fetch(["q"], 1, W, LEASE)).claims == []
    await _expired(backend, new.id)
    assert await backend.retry(JobFilter(ids=(new.id,))) == [new.id]
    claims = (await backend.fetch(["q"], 1, W, LEASE)).claims
    assert [c.job.id for c in claims] == [new.id]


async def test_a_parked_keep_last_copy_says_what_it_waits_for(backend: Backend) -> None:
    spec = DedupSpec("t:k", "keep_last", replace=True)
    await backend.enqueue([_job(spec, 1)])
    assert len((await backend.fetch(["q"], 1, W, LEASE)).claims) == 1
    [copy] = await backend.enqueue([_job(spec, 2)])
    assert copy.job.state is JobState.DELAYED
    [reason] = await why_waiting(backend, await _get(backend, copy.job.id))
    assert reason["reason"] == "after_running_copy"
    assert "keep_last" in describe(reason)
