"""What the Redis backend must do beyond the conformance suite: scripts that survive a
flushed or restarted server, a keyspace that fits Redis Cluster, blocking wake-ups, start-up
durability checks, bounded event streams and a global event stream that loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
from pathlib import Path

import pytest
from redis.crc import key_slot

import redis
from conveyor.backends.base import (
    JobFilter,
    NewJob,
    Outcome,
    Retention,
    Settlement,
    WorkerInfo,
)
from conveyor.backends.redis import RedisBackend
from conveyor.backends.redis.scripts import SCRIPTS
from conveyor.errors import BackendUnavailableError
from conveyor.jobs import JobState
from tests.conformance.conftest import new_job
from tests.redis_server import RedisServer, unique_url

W = "worker-1"
LEASE = 30_000


async def opened(url: str) -> RedisBackend:
    b = RedisBackend(url)
    await b.open()
    return b


# -- scripts --------------------------------------------------------------------------------
async def test_scripts_are_loaded_again_after_a_script_flush(backend: RedisBackend,
                                                             raw: redis.Redis) -> None:
    first, second = new_job(), new_job()
    await backend.enqueue([first, second])
    raw.script_flush()
    assert raw.script_exists(SCRIPTS["fetch"].sha) == [False]
    [claim] = (await backend.fetch(["q"], 1, W, LEASE)).claims
    assert claim.job.id == first.id
    assert raw.script_exists(SCRIPTS["fetch"].sha) == [True]
    raw.script_flush()  # and inside a pipeline: settle + fetch in one batch
    fetched = await backend.fetch(["q", "other"], 1, W, LEASE,
                                  settle=[Settlement(first.id, claim.token, Outcome.COMPLETED)])
    assert fetched.settled == [True] and [c.job.id for c in fetched.claims] == [second.id]


def test_the_sync_api_reloads_scripts_after_a_script_flush_too(url: str,
                                                               raw: redis.Redis) -> None:
    from conveyor import Conveyor

    app = Conveyor(url)
    add = app.task(name="add")(lambda: None)
    try:
        first = add.enqueue()
        raw.script_flush()
        assert raw.script_exists(SCRIPTS["enqueue"].sha) == [False]
        second = add.enqueue()  # one script call: NOSCRIPT, then EVAL
        raw.script_flush()
        both = app.enqueue_many([add.prepare(), add.options(queue="other").prepare()])
        # ^ two queues: two script calls in one pipeline, both answered NOSCRIPT
        assert raw.script_exists(SCRIPTS["enqueue"].sha) == [True]
        assert len({first.id, second.id, *(h.id for h in both)}) == 4
        assert app.get_job(second.id).state.value == "waiting"
    finally:
        app.close()


def test_every_script_states_its_keys_and_arguments() -> None:
    for script in SCRIPTS.values():
        header = script.text.split("\n\n", 1)[0]
        assert header.startswith(f"-- {script.name}: "), script.name
        assert "KEYS[1" in header and "ARGV[1" in header, script.name
        assert "@include" not in script.text, script.name


# -- keyspace -------------------------------------------------------------------------------
KEY_PATTERNS = [
    r"\{q:(?P<queue>[^}]+)\}:(job:.+|waiting|delayed|active|completed|failed|cancelled|jobs"
    r"|keys|tombstones|events|meta|wake|meta:claim:.+|schedule:.+)",
    r"\{g\}:(queues|workers|worker_started|worker_seen|lock:.+|schedules)",
    r"\{i:[0-9a-f]{2}\}:ids",
]


async def test_every_key_of_a_queue_carries_its_hash_tag(backend: RedisBackend,
                                                         raw: redis.Redis) -> None:
    prefix = backend.settings.prefix
    jobs = [new_job("mail", key="k1"), new_job("mail"), new_job("mail", delay_ms=60_000),
            new_job("sms", priority=3)]
    await backend.enqueue(jobs)
    fetched = await backend.fetch(["mail", "sms"], 2, W, LEASE)
    a, b = fetched.claims
    await backend.progress(a.lease, 10)
    await backend.log(a.lease, "x")
    await backend.heartbeat(WorkerInfo(W, "h", 1, ("mail", "sms"), 2), [a.lease, b.lease], LEASE)
    await backend.settle([Settlement(a.job.id, a.token, Outcome.COMPLETED),
                          Settlement(b.job.id, b.token, Outcome.FAILED, error={"type": "E"})])
    await backend.cancel(JobFilter(queue="mail", states=(JobState.DELAYED,)))
    await backend.retry(JobFilter(states=(JobState.FAILED,)))
    await backend.set_paused("mail", True)
    await backend.try_lock("maintenance", "me", 10_000)
    await backend.remove(JobFilter(states=(JobState.COMPLETED,)))
    await backend.prune(Retention())

    keys = [k for k in raw.scan_iter(match=f"{prefix}:*", count=1000)]
    tags: dict[str, set[int]] = {}
    for key in keys:
        rest = key[len(prefix) + 1:]
        match = next((m for p in KEY_PATTERNS if (m := re.fullmatch(p, rest))), None)
        assert match is not None, f"undocumented key {key}"
        if match.groupdict().get("queue"):
            tags.setdefault(match["queue"], set()).add(key_slot(key.encode()))
    assert set(tags) == {"mail", "sms"}
    for queue, slots in tags.items():
        assert slots == {key_slot(f"{{q:{queue}}}".encode())}, queue
    assert key_slot(b"{q:mail}") != key_slot(b"{q:sms}")
    kinds = {re.sub(r"job:.+", "job:", k.rsplit("}:", 1)[1]) for k in keys if "{q:" in k}
    assert {"job:", "waiting", "cancelled", "jobs", "keys", "tombstones", "events", "meta",
            "wake"} <= kinds


async def test_a_job_is_found_by_its_id_alone_and_keys_are_unique_per_queue(
        backend: RedisBackend) -> None:
    a = new_job("a", key="report:1")
    b = new_job("b", key="report:1")
    first, second = await backend.enqueue([a, b])
    assert first.created and second.created  # dedup keys are scoped to their queue
    got = await backend.get(b.id)
    assert got is not None and got.queue == "b"
    # an id reused in another queue returns the job that has it
    clash = new_job("c", id=a.id)
    [again] = await backend.enqueue([clash])
    assert not again.created and again.job.queue == "a"
    assert [q.name for q in await backend.queues()] == ["a", "b"]


async def test_the_id_of_a_removed_job_can_be_taken_by_another_queue(
        backend: RedisBackend) -> None:
    gone = new_job("a")
    await backend.enqueue([gone])
    assert await backend.remove(JobFilter(ids=(gone.id,))) == [gone.id]
    [taken] = await backend.enqueue([new_job("c", id=gone.id)])
    assert taken.created and taken.job.queue == "c"
    found = await backend.get(gone.id)
    assert found is not None and found.queue == "c"
    [again] = await backend.enqueue([new_job("c", id=gone.id)])  # a retried enqueue
    assert not again.created and again.job.queue == "c"


# -- wake-ups -------------------------------------------------------------------------------
async def test_wait_for_work_returns_within_milliseconds_of_an_enqueue(
        url: str, backend: RedisBackend) -> None:
    waiter = await opened(url)
    try:
        delays = []
        for _ in range(5):
            task = asyncio.create_task(waiter.wait_for_work(["q"], 10.0))
            await asyncio.sleep(0.05)  # blocked in BLPOP by now
            assert not task.done()
            started = time.perf_counter()
            await backend.enqueue([new_job()])
            await task
            delays.append(time.perf_counter() - started)
            await waiter.fetch(["q"], 10, W, LEASE)  # takes it: the queue is empty again
        assert sorted(delays)[2] < 0.02, delays  # ~1 ms on an idle machine
    finally:
        await waiter.close()


async def test_a_busy_worker_leaves_the_wake_up_to_an_idle_one(url: str,
                                                               backend: RedisBackend) -> None:
    await backend.enqueue([new_job()])
    busy, idle = await opened(url), await opened(url)
    try:
        assert len((await busy.fetch(["q"], 1, "busy", LEASE)).claims) == 1  # full batch
        assert (await idle.fetch(["q"], 5, "idle", LEASE)).claims == []  # room to spare
        busy_wait = asyncio.create_task(busy.wait_for_work(["q"], 10.0))
        await asyncio.sleep(0.05)
        idle_wait = asyncio.create_task(idle.wait_for_work(["q"], 5.0))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        await backend.enqueue([new_job()])
        await idle_wait
        assert time.monotonic() - started < 4.0  # woken by the job, not the 5 s timeout
        assert not busy_wait.done()  # it never competed for the token
        busy_wait.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await busy_wait
    finally:
        await busy.close()
        await idle.close()


async def test_a_burst_wakes_as_many_idle_workers_as_it_needs(url: str,
                                                              backend: RedisBackend) -> None:
    workers = [await opened(url) for _ in range(4)]
    try:
        for w in workers:
            assert (await w.fetch(["q"], 1, "w", LEASE)).claims == []
        waits = [asyncio.create_task(w.wait_for_work(["q"], 5.0)) for w in workers]
        await asyncio.sleep(0.05)
        started = time.monotonic()
        await backend.enqueue([new_job() for _ in range(40)])
        await asyncio.gather(*waits)
        assert time.monotonic() - started < 4.0  # all woken by the burst, not the timeout
    finally:
        for w in workers:
            await w.close()


async def test_a_cancelled_wait_for_work_ends_even_as_it_is_woken(url: str) -> None:
    """A worker cancels its listener on shutdown and waits for it: a cancel that lands as
    the wait is being woken must still end the wait (Python 3.11's wait_for loses it)."""
    b = await opened(url)
    try:
        await b.fetch(["q"], 0, W, LEASE)  # asked for nothing: waits without BLPOP
        assert b.conn.waker is not None
        for _ in range(20):
            task = asyncio.create_task(b.wait_for_work(["q"], 30.0))
            await asyncio.sleep(0.01)
            b.conn.waker.fed(["q"], 5, 0)  # a fetch with room to spare wakes the gate...
            await asyncio.sleep(0)
            task.cancel()  # ...just as the worker cancels its listener
            done, _ = await asyncio.wait({task}, timeout=2.0)
            assert done, "the cancelled wait never ended"
            b.conn.waker.fed(["q"], 0, 0)
    finally:
        await b.close()


async def test_an_idle_claim_leases_a_job_the_moment_it_arrives(url: str,
                                                                 raw: redis.Redis) -> None:
    """fetch_when_ready sends the claim behind the BLPOP: Redis runs it as the wake-up
    comes, before the enqueue is even answered, with no round trip of the worker between
    (here the worker's event loop is held up the whole time, so it could not have sent
    anything)."""
    waiter = await opened(url)
    try:
        await waiter.fetch(["q"], 5, W, LEASE)  # nothing yet: an idle worker
        claim = asyncio.create_task(
            waiter.fetch_when_ready(["q"], 5, W, LEASE, 30.0, asyncio.Event()))
        await asyncio.sleep(0.05)  # blocked in BLPOP by now
        assert not claim.done()
        job = new_job()
        seen: list[bytes | str | None] = []

        def produce() -> None:  # holds up this event loop until it is done
            asyncio.run(_enqueue_once(url, job))
            seen.append(raw.hget(waiter.keys.queue("q").keys[0] + job.id, "state"))

        thread = threading.Thread(target=produce)
        thread.start()
        thread.join()
        assert seen == ["active"]  # leased while the waiter's loop could do nothing
        fetched = await claim
        assert [c.job.id for c in fetched.claims] == [job.id]
        assert fetched.claims[0].job.state is JobState.ACTIVE
        done = await waiter.settle([Settlement(job.id, fetched.claims[0].token,
                                               Outcome.COMPLETED)])
        assert done == [True]
    finally:
        await waiter.close()


async def _enqueue_once(url: str, job: NewJob) -> None:
    producer = await opened(url)
    try:
        await producer.enqueue([job])
    finally:
        await producer.close()


async def test_an_interrupted_idle_claim_answers_at_once(url: str,
                                                         backend: RedisBackend) -> None:
    waiter = await opened(url)
    try:
        stop = asyncio.Event()
        claim = asyncio.create_task(waiter.fetch_when_ready(["q"], 5, W, LEASE, 30.0, stop))
        await asyncio.sleep(0.05)
        assert not claim.done()
        stop.set()
        done, _ = await asyncio.wait({claim}, timeout=10.0)  # far below its 30 s
        assert done and claim.result().claims == []
        job = new_job()
        await backend.enqueue([job])  # after the interrupt: left for the next claim
        assert (await backend.get(job.id)).state is JobState.WAITING  # type: ignore[union-attr]
        fetched = await waiter.fetch_when_ready(["q", "r"], 5, W, LEASE, 30.0, asyncio.Event())
        assert [c.job.id for c in fetched.claims] == [job.id]  # several queues: peek, claim
    finally:
        await waiter.close()


async def test_fetch_passes_a_wake_up_on_when_it_leaves_work_behind(
        url: str, backend: RedisBackend, raw: redis.Redis) -> None:
    await backend.enqueue([new_job() for _ in range(3)])
    wake = backend.keys.queue("q").wake
    raw.delete(wake)
    await backend.fetch(["q"], 1, W, LEASE)
    assert raw.llen(wake) == 1  # more is waiting: the next idle worker is woken
    await backend.fetch(["q"], 5, W, LEASE)
    assert raw.llen(wake) == 0  # the queue is empty: no stale wake-ups left


# -- durability -----------------------------------------------------------------------------
def test_open_warns_when_redis_may_lose_jobs(tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    unsafe = RedisServer(tmp_path / "unsafe", extra=("--maxmemory-policy", "allkeys-lru")).start()
    safe = RedisServer(tmp_path / "safe", appendonly=True).start()
    try:
        with caplog.at_level(logging.WARNING, logger="conveyor.backends.redis"):
            asyncio.run(_open_close(unsafe.url))
        messages = " ".join(r.getMessage() for r in caplog.records)
        assert "maxmemory-policy is 'allkeys-lru'" in messages
        assert "neither AOF nor RDB" in messages
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="conveyor.backends.redis"):
            asyncio.run(_open_close(safe.url))
        assert caplog.records == []
    finally:
        unsafe.stop()
        safe.stop()


async def _open_close(url: str) -> None:
    b = await opened(url)
    await b.close()


async def test_accepted_jobs_and_leases_survive_a_kill_9_of_redis(
        fresh_redis: RedisServer) -> None:
    b = await opened(unique_url(fresh_redis))
    try:
        jobs = [new_job() for _ in range(5)]
        await b.enqueue(jobs)
        held = (await b.fetch(["q"], 2, W, LEASE)).claims
        fresh_redis.kill()
        with pytest.raises(BackendUnavailableError):
            await b.fetch(["q"], 1, W, LEASE)
        fresh_redis.start()  # same port and dir: the AOF is replayed, the script cache is empty
        fetched = await b.fetch(["q"], 10, W, LEASE,
                                settle=[Settlement(c.job.id, c.token, Outcome.COMPLETED)
                                        for c in held])
        assert fetched.settled == [True, True]
        assert {c.job.id for c in fetched.claims} == {j.id for j in jobs[2:]}
        done = await b.get(jobs[0].id)
        assert done is not None and done.state is JobState.COMPLETED
    finally:
        await b.close()


async def test_wait_for_work_recovers_after_a_redis_restart(fresh_redis: RedisServer) -> None:
    url = unique_url(fresh_redis)
    waiter, producer = await opened(url), await opened(url)
    try:
        blocked = asyncio.create_task(waiter.wait_for_work(["q"], 30.0))
        await asyncio.sleep(0.05)
        fresh_redis.kill()
        with pytest.raises(BackendUnavailableError):  # the worker's loop logs and retries
            await asyncio.wait_for(blocked, 5.0)
        fresh_redis.start()
        again = asyncio.create_task(waiter.wait_for_work(["q"], 10.0))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        await producer.enqueue([new_job()])
        await again
        assert time.monotonic() - started < 8.0  # woken by the job, not the 10 s timeout
    finally:
        await waiter.close()
        await producer.close()


# -- events and retention -------------------------------------------------------------------
async def test_event_stream_is_capped_and_old_events_vanish(redis_server: RedisServer,
                                                            raw: redis.Redis) -> None:
    b = await opened(unique_url(redis_server, events_max_len="1000"))
    try:
        for _ in range(6):
            await b.enqueue([new_job() for _ in range(500)])
        events_key = b.keys.queue("q").keys[10]
        assert 1000 <= raw.xlen(events_key) <= 1200  # XADD MAXLEN ~ 1000
        first = (await b.events(after=0, limit=1))[0]
        await asyncio.sleep(0.02)
        pruned = await b.prune(Retention(events_max_age_ms=10))
        assert pruned.events >= 1000
        assert await b.events(after=0) == []
        await b.enqueue([new_job()])
        [latest] = await b.events(after=0)
        assert latest.id > first.id
    finally:
        await b.close()


async def test_global_events_merge_queues_in_order_and_lose_nothing(url: str) -> None:
    writers = [await opened(url) for _ in range(3)]
    reader = await opened(url)
    expected: set[str] = set()
    seen: list[tuple[int, str]] = []
    try:
        async def write(b: RedisBackend, queue: str) -> None:
            for _ in range(40):
                jobs = [new_job(queue) for _ in range(5)]
                expected.update(j.id for j in jobs)
                await b.enqueue(jobs)
                await asyncio.sleep(0)

        async def read(stop: asyncio.Event) -> None:
            after = 0
            while True:
                finished = stop.is_set()
                batch = await reader.events(after=after, limit=37)
                seen.extend((e.id, e.job_id) for e in batch)
                if batch:
                    after = batch[-1].id
                elif finished:
                    return
                await asyncio.sleep(0)

        stop = asyncio.Event()
        reading = asyncio.create_task(read(stop))
        await asyncio.gather(*(write(b, f"q{i}") for i, b in enumerate(writers)))
        stop.set()
        await reading
        ids = [i for i, _ in seen]
        assert ids == sorted(ids)
        assert sorted(job for _, job in seen) == sorted(expected)  # each exactly once
    finally:
        for b in [*writers, reader]:
            await b.close()


async def test_events_of_one_job_are_read_without_scanning_the_whole_stream(
        backend: RedisBackend) -> None:
    target = new_job()
    await backend.enqueue([new_job() for _ in range(2000)])
    await backend.enqueue([target])
    await backend.enqueue([new_job() for _ in range(2000)])
    [event] = await backend.events(after=0, job_id=target.id)
    assert event.job_id == target.id and event.kind == "waiting"
    assert await backend.events(after=event.id, job_id=target.id) == []


# -- listings -------------------------------------------------------------------------------
async def test_listing_by_state_reads_small_sets_whole_and_walks_large_ones_the_same(
        backend: RedisBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    from conveyor.backends.redis import reads

    await backend.enqueue([new_job() for _ in range(30)])
    claims = (await backend.fetch(["q"], 30, W, LEASE)).claims
    failed = claims[::3]
    await backend.settle([
        Settlement(c.job.id, c.token, Outcome.FAILED if c in failed else Outcome.COMPLETED,
                   error={"type": "E", "message": "boom"}) for c in claims])

    async def pages(where: JobFilter) -> list[str]:
        seen: list[str] = []
        cursor = None
        while True:
            page = await backend.list_jobs(where, limit=4, cursor=cursor)
            seen += [j.id for j in page.jobs]
            if page.next_cursor is None:
                return seen
            cursor = page.next_cursor

    newest_first = [c.job.id for c in reversed(failed)]
    where = JobFilter(states=(JobState.FAILED,))
    assert await pages(where) == newest_first  # 10 failed jobs: the set is read whole
    monkeypatch.setattr(reads, "LIST_BUDGET", 7)  # now the queue's 30 jobs are walked
    assert await pages(where) == newest_first
    assert await pages(JobFilter(states=(JobState.FAILED,), search="BOOM")) == newest_first


def test_commands_are_packed_by_hiredis_exactly_as_redis_py_would() -> None:
    from redis.asyncio.connection import Connection

    from conveyor.backends.redis import connect

    ours, theirs = connect._Connection(), Connection()
    for args in (("EVALSHA", "f" * 40, 2, "k:{q:a}", "k2", "héllo wörld", 1.5, -3, b"\x00\xff"),
                 ("CONFIG GET", "maxmemory-policy"), (b"SCRIPT LOAD", "return 1"),
                 ("SET", "x" * 100_000, "")):
        assert b"".join(ours.pack_command(*args)) == b"".join(theirs.pack_command(*args))
    pool = connect._client("redis://127.0.0.1:1/0", blocking=False).connection_pool
    assert pool.connection_class is connect._Connection


async def test_two_claim_calls_of_one_worker_in_flight_take_different_jobs(
        backend: RedisBackend) -> None:
    """A worker keeps two calls in flight under load: each has its own lease token prefix
    and last-claim record, so neither is handed the other's jobs."""
    await backend.enqueue([new_job() for _ in range(6)])
    first, second = await asyncio.gather(backend.fetch(["q"], 3, W, LEASE),
                                         backend.fetch(["q"], 3, W, LEASE))
    ids = [c.job.id for c in (*first.claims, *second.claims)]
    assert len(ids) == len(set(ids)) == 6
    again = await backend.fetch(["q"], 3, W, LEASE, settle=[
        Settlement(c.job.id, c.token, Outcome.COMPLETED) for c in first.claims])
    assert again.claims == [] and again.settled == [True] * 3


async def test_a_claimed_job_is_the_job_as_stored(backend: RedisBackend) -> None:
    """The claim decodes the job from the script's reply, not from a read: every field
    must come out as `get` reads it (distinct values, so no two fields can swap)."""
    job = new_job(args_json='["a", 1]', kwargs_json='{"k": [2]}', priority=7, key="dedup",
                  max_attempts=5, max_stalls=3, timeout=12.5, meta_json='{"m": true}',
                  backoff_json='{"kind": "fixed", "delay": 4.0}')
    await backend.enqueue([job])
    [claim] = (await backend.fetch(["q"], 1, W, LEASE)).claims
    stored = await backend.get(job.id)
    assert claim.job == stored
    assert (claim.job.priority, claim.job.key, claim.job.max_attempts, claim.job.max_stalls,
            claim.job.timeout, claim.job.meta, claim.job.args, claim.job.kwargs,
            claim.job.attempt, claim.job.worker) == (
        7, "dedup", 5, 3, 12.5, {"m": True}, ["a", 1], {"k": [2]}, 1, W)


async def test_an_enqueued_job_is_the_job_as_stored(backend: RedisBackend) -> None:
    """enqueue answers with the job built from what it sent, not read back: every field
    must come out as `get` reads it (distinct values, delayed so no two fields can swap)."""
    job = new_job(args_json='["a", 1]', kwargs_json='{"k": [2]}', priority=7, key="dedup",
                  max_attempts=5, max_stalls=3, timeout=12.5, meta_json='{"m": true}',
                  backoff_json='{"kind": "fixed", "delay": 4.0}', delay_ms=60_000)
    [enqueued] = await backend.enqueue([job])
    assert enqueued.created
    assert enqueued.job == await backend.get(job.id)
    assert (enqueued.job.state, enqueued.job.priority, enqueued.job.key,
            enqueued.job.max_attempts, enqueued.job.max_stalls, enqueued.job.timeout,
            enqueued.job.backoff, enqueued.job.meta) == (
        JobState.DELAYED, 7, "dedup", 5, 3, 12.5, {"kind": "fixed", "delay": 4.0}, {"m": True})
    assert enqueued.job.scheduled_at - enqueued.job.created_at == 60_000
