"""The Redis backend: every transition is one Lua script on one queue's slot.

The hot path costs one round trip per batch: `fetch` settles the previous batch, promotes
due delayed jobs and claims the next batch in one script call (two round trips only for a
worker of several queues, which first peeks at each queue's head to split its batch by
priority). `enqueue` costs one (two on Cluster, where the job id index lives in other
slots than the queue: see keyspace.py). Heartbeats renew every lease of a worker in one pipeline.

Operator calls (listing, counts, events, bulk actions) visit every queue in one pipeline
per step, each queue's part done by a bounded script.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis import exceptions as rx

from ...errors import InvalidRequestError
from ...jobs import Event, Job, JobState
from ...serialization import dumps
from ..base import (
    SYNC_CALL,
    Backend,
    Capabilities,
    Claim,
    Enqueued,
    Fetched,
    JobFilter,
    Lease,
    LeaseStatus,
    NewJob,
    Page,
    Pruned,
    QueueInfo,
    Retention,
    Settlement,
    WorkerInfo,
)
from . import codec, reads
from .connect import connect, connect_blocking, parse_url
from .keyspace import Keyspace, queue_of_token
from .schedules import RedisSchedules
from .scripts import SCRIPTS, Batch, backend_error, run, run_blocking
from .wakeup import MIN_BLOCK, Waker

RESCUE_BATCH = 1000
WORKER_FORGET_MS = 3600 * 1000
_LEASE_STATUS = {0: LeaseStatus.LOST, 1: LeaseStatus.HELD, 2: LeaseStatus.CANCEL_REQUESTED}


class RedisBackend(RedisSchedules, Backend):
    # inline_sync: while SYNC_CALL is set (the app's sync API) calls go through a
    # synchronous client on the caller's thread, so no coroutine here suspends
    capabilities = Capabilities(multi_process=True, multi_host=True, blocking_wakeup=True,
                                inline_sync=True)

    def __init__(self, url: str) -> None:
        self.url = url
        self.settings = parse_url(url)
        self.keys = Keyspace(self.settings.prefix)
        self.cluster = False
        self._client: Any = None
        self._blocking: Any = None
        self._waker: Waker | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opening: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self._guard: AsyncGenerator[None, None] | None = None
        self._checked = False
        self._sync_client: Any = None  # the sync API's client (any thread), on first use
        self._sync_lock = threading.Lock()
        # (queue, worker id, slot) -> token prefix of a claim call whose reply never came:
        # the next call in that slot repeats it, so fetch.lua hands over what it leased
        self._unanswered: dict[tuple[str, str, int], str] = {}
        # (queue, worker id) -> the slots of its claim calls in flight (a worker may have
        # two: each keeps its own last-claim record, see fetch.lua)
        self._in_flight: dict[tuple[str, str], set[int]] = {}

    # -- plumbing -----------------------------------------------------------------------
    async def _ready(self) -> Any:
        """The command client of the running event loop, connecting on first use.

        Connections belong to one event loop. An instance used from a new loop (the app
        object of a test suite, `drain` called twice) connects again there; the old loop
        closed its connections on its way out (see `_close_with_loop`).
        """
        loop = asyncio.get_running_loop()
        if self._loop is loop and self._client is not None:
            return self._client
        if self._opening is None or self._opening[0] is not loop:
            self._opening = (loop, asyncio.Lock())
        async with self._opening[1]:
            if self._loop is not loop or self._client is None:
                await self._connect(loop)
        return self._client

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            client, blocking, cluster = await connect(self.settings, check=not self._checked)
        except rx.RedisError as exc:
            raise backend_error(exc) from exc
        self._checked = True
        if not cluster:  # compile every script now, so a broken install fails at start-up
            batch = Batch()
            for script in SCRIPTS.values():
                batch.command("SCRIPT", "LOAD", script.text)
            try:
                await run(client, batch)
            except BaseException:
                await blocking.aclose()
                await client.aclose()
                raise
        self._client, self._blocking, self.cluster, self._loop = client, blocking, cluster, loop
        self._waker = Waker(blocking, self.keys, cluster)
        self._guard = self._close_with_loop()
        await anext(self._guard)

    async def _close_with_loop(self) -> AsyncGenerator[None, None]:
        # An async generator that never finishes: asyncio.run() closes every such generator
        # before it closes its loop, which runs this `finally` inside that loop, in time to
        # close the connections there.
        try:
            yield
        finally:
            await self._disconnect()

    async def _disconnect(self) -> None:
        client, blocking, loop = self._client, self._blocking, self._loop
        if client is None:
            return
        self._client = self._blocking = self._waker = self._loop = None
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            for c in (blocking, client):
                await c.aclose()

    async def _run(self, batch: Batch) -> list[Any]:
        if SYNC_CALL.get():
            return run_blocking(self._sync(), batch)
        return await run(await self._ready(), batch)

    async def _connected(self) -> None:
        """Connected in the caller's mode (which also tells whether this is a Cluster)."""
        if SYNC_CALL.get():
            self._sync()
        else:
            await self._ready()

    def _sync(self) -> Any:
        """The synchronous client of the sync API, connecting on first use."""
        client = self._sync_client
        if client is not None:
            return client
        with self._sync_lock:
            if self._sync_client is None:
                try:
                    client, cluster = connect_blocking(self.settings, check=not self._checked)
                except rx.RedisError as exc:
                    raise backend_error(exc) from exc
                if not cluster:  # compile every script now, as _connect does
                    batch = Batch()
                    for script in SCRIPTS.values():
                        batch.command("SCRIPT", "LOAD", script.text)
                    try:
                        run_blocking(client, batch)
                    except BaseException:
                        client.close()
                        raise
                self._checked, self.cluster, self._sync_client = True, cluster, client
            return self._sync_client

    def _queue_script(self, batch: Batch, name: str, queue: str, *args: Any) -> int:
        """Add a call of a queue script: KEYS are the queue's, ARGV[1] the events cap."""
        return batch.script(name, self.keys.queue(queue).keys,
                            (self.settings.events_max_len, *args))

    async def queue_names(self) -> list[str]:
        batch = Batch()
        batch.command("SMEMBERS", self.keys.queues)
        return sorted((await self._run(batch))[0])

    async def locate(self, job_ids: Iterable[str]) -> dict[str, str]:
        """The queue of each indexed job id."""
        ids = list(dict.fromkeys(job_ids))
        batch = Batch()
        for job_id in ids:
            batch.command("HGET", self.keys.index(job_id), job_id)
        found = await self._run(batch)
        return {job_id: queue for job_id, queue in zip(ids, found, strict=True)
                if queue is not None}

    def _unindex(self, batch: Batch, queue: str, job_ids: Iterable[str]) -> None:
        shards: dict[str, list[str]] = {}
        for job_id in job_ids:
            shards.setdefault(self.keys.index(job_id), []).append(job_id)
        for shard, ids in shards.items():
            batch.script("unindex", [shard], [queue, *ids])

    # -- life ---------------------------------------------------------------------------
    async def open(self) -> None:
        await self._connected()

    async def close(self) -> None:
        with self._sync_lock:
            client, self._sync_client = self._sync_client, None
        if client is not None:
            client.close()
        if SYNC_CALL.get():
            return  # the async side belongs to its event loop
        await self._disconnect()
        guard, self._guard = self._guard, None
        if guard is not None:
            with contextlib.suppress(RuntimeError):
                await guard.aclose()

    async def now(self) -> int:
        batch = Batch()
        batch.command("TIME")
        seconds, micros = (await self._run(batch))[0]
        return int(seconds) * 1000 + int(micros) // 1000

    # -- producers ----------------------------------------------------------------------
    async def enqueue(self, jobs: Sequence[NewJob]) -> list[Enqueued]:
        if not jobs:
            return []
        for new in jobs:
            self.keys.queue(new.queue)  # refuse a bad queue name before writing anything
        await self._connected()
        if self.cluster:
            return await self._enqueue_cluster(jobs)
        out: list[Enqueued | None] = [None] * len(jobs)
        groups = _by_queue(jobs, range(len(jobs)))
        batch = Batch()
        for queue, positions in groups.items():
            keys = [*self.keys.queue(queue).keys, self.keys.queues]
            shards: dict[str, int] = {}
            args: list[Any] = [self.settings.events_max_len, queue, 1]
            for i in positions:
                shard = self.keys.index(jobs[i].id)
                place = shards.get(shard)
                if place is None:
                    keys.append(shard)
                    place = shards[shard] = len(keys)
                args += codec.new_job_args(jobs[i])
                args.append(place)
            batch.script("enqueue", keys, args)
        elsewhere: list[int] = []
        for positions, stored in zip(groups.values(), await self._run(batch), strict=True):
            for i, reply in zip(positions, stored, strict=True):
                if reply[0] == 2:
                    elsewhere.append(i)
                else:
                    out[i] = self._enqueued(jobs[i], reply)
        for i in elsewhere:  # the id is another queue's: that job, or a stale index entry
            out[i] = await self._claim_id_from(jobs[i])
        return [e for e in out if e is not None]

    def _enqueued(self, new: NewJob, reply: list[Any]) -> Enqueued:
        if reply[0] == 1:
            return Enqueued(codec.created_job(new, reply[1], reply[2], reply[3]), True)
        return Enqueued(codec.job(codec.fields(reply[1])), False)

    async def _claim_id_from(self, new: NewJob) -> Enqueued:
        """An id indexed to another queue: that queue's job, or (the entry outlived its
        job) the id is taken over and the job stored here."""
        owner = (await self.locate([new.id])).get(new.id)
        if owner is not None and owner != new.queue:
            batch = Batch()
            batch.command("HGETALL", self.keys.queue(owner).keys[0] + new.id)
            h = (await self._run(batch))[0]
            if h:
                return Enqueued(codec.job(h), False)
            batch = Batch()
            batch.command("HSET", self.keys.index(new.id), new.id, new.queue)
            await self._run(batch)
        return (await self.enqueue([new]))[0]

    async def _enqueue_cluster(self, jobs: Sequence[NewJob]) -> list[Enqueued]:
        """On Cluster the index and the queue registry live in other slots than the queue:
        index the ids first (HSETNX also tells an id that exists already), then one script
        call per queue stores its jobs."""
        out: list[Enqueued | None] = [None] * len(jobs)
        first = Batch()
        first.command("SADD", self.keys.queues, *{j.queue for j in jobs})
        for new in jobs:
            first.command("HSETNX", self.keys.index(new.id), new.id, new.queue)
        fresh = [bool(r) for r in (await self._run(first))[1:]]
        if not all(fresh):
            await self._existing_elsewhere(jobs, fresh, out)
        groups = _by_queue(jobs, [i for i in range(len(jobs)) if out[i] is None])
        batch = Batch()
        for queue, positions in groups.items():
            args: list[Any] = [queue, 0]
            for i in positions:
                args += codec.new_job_args(jobs[i])
                args.append("")
            self._queue_script(batch, "enqueue", queue, *args)
        try:
            results = await self._run(batch)
        except BaseException:
            await self._forget_ids(jobs, [i for i, f in enumerate(fresh) if f])
            raise
        unused: list[int] = []
        for positions, stored in zip(groups.values(), results, strict=True):
            for i, reply in zip(positions, stored, strict=True):
                out[i] = self._enqueued(jobs[i], reply)
                if reply[0] == 0 and fresh[i] and out[i].job.id != jobs[i].id:  # type: ignore[union-attr]
                    unused.append(i)
        if unused:
            await self._forget_ids(jobs, unused)
        return [e for e in out if e is not None]

    async def _existing_elsewhere(self, jobs: Sequence[NewJob], fresh: list[bool],
                                  out: list[Enqueued | None]) -> None:
        """Ids indexed already: if the job lives in another queue, that job is the answer."""
        reused = [i for i, f in enumerate(fresh) if not f]
        owners = await self.locate(jobs[i].id for i in reused)
        for i in reused:
            new = jobs[i]
            owner = owners.get(new.id)
            if owner is None or owner == new.queue:
                continue
            batch = Batch()
            batch.command("HGETALL", self.keys.queue(owner).keys[0] + new.id)
            h = (await self._run(batch))[0]
            if h:
                out[i] = Enqueued(codec.job(h), False)
            else:  # a stale entry: the id is free, take it over
                batch = Batch()
                batch.command("HSET", self.keys.index(new.id), new.id, new.queue)
                await self._run(batch)

    async def _forget_ids(self, jobs: Sequence[NewJob], positions: list[int]) -> None:
        batch = Batch()
        for i in positions:
            self._unindex(batch, jobs[i].queue, [jobs[i].id])
        await self._run(batch)

    # -- workers ------------------------------------------------------------------------
    def _settle_groups(self, settle: Sequence[Settlement]) -> dict[str, list[int]]:
        groups: dict[str, list[int]] = {}
        for i, s in enumerate(settle):
            queue = queue_of_token(s.token)
            if queue is not None and not any(c in queue for c in "{}"):
                groups.setdefault(queue, []).append(i)
        return groups

    def _settle_args(self, settle: Sequence[Settlement], positions: list[int]) -> list[Any]:
        args: list[Any] = [len(positions)]
        for i in positions:
            args += codec.settlement_args(settle[i])
        return args

    def _begin_call(self, queue: str, worker_id: str) -> tuple[str, int]:
        """(token prefix, slot) for a claim call, in a slot no call of this worker has in
        flight; a slot whose last call never got its reply first (that call may have run:
        the repeated prefix makes fetch.lua hand over what it leased), else a new prefix."""
        busy = self._in_flight.setdefault((queue, worker_id), set())
        free = [slot for slot in (0, 1) if slot not in busy] or [1]
        slot = next((s for s in free if (queue, worker_id, s) in self._unanswered), free[0])
        prefix = self._unanswered.pop((queue, worker_id, slot), None)
        busy.add(slot)
        return prefix or f"{queue}:{secrets.token_hex(6)}.", slot

    def _end_calls(self, calls: dict[str, tuple[str, int]], worker_id: str,
                   answered: bool) -> None:
        for queue, (prefix, slot) in calls.items():
            self._in_flight.get((queue, worker_id), set()).discard(slot)
            if not answered:
                self._unanswered[(queue, worker_id, slot)] = prefix

    async def _claim_calls(self, calls: dict[str, tuple[str, int]], worker_id: str,
                           sent: Awaitable[list[Any]]) -> list[Any]:
        """Await `sent`, a batch of claim calls on its way, keeping the prefix and slot of
        each whose reply never came for the worker's next call."""
        try:
            results = await sent
        except BaseException:
            self._end_calls(calls, worker_id, answered=False)
            raise
        self._end_calls(calls, worker_id, answered=True)
        return results

    async def fetch(self, queues: Sequence[str], limit: int, worker_id: str, lease_ms: int,
                    settle: Sequence[Settlement] = ()) -> Fetched:
        plan = self._plan_fetch(queues, limit, worker_id, lease_ms, settle)
        results = await self._claim_calls(plan.prefixes, worker_id, self._run(plan.batch))
        return await self._fetched(plan, results, settle)

    async def fetch_when_ready(self, queues: Sequence[str], limit: int, worker_id: str,
                               lease_ms: int, timeout: float,
                               interrupt: asyncio.Event) -> Fetched:
        """On one server the claim goes out behind the BLPOP, on the same connection, and
        runs in Redis the moment a wake-up token arrives (see wakeup.py)."""
        await self._ready()
        if self.cluster or SYNC_CALL.get() or timeout < MIN_BLOCK or interrupt.is_set():
            return await super().fetch_when_ready(queues, limit, worker_id, lease_ms,
                                                  timeout, interrupt)
        assert self._waker is not None
        plan = self._plan_fetch(queues, limit, worker_id, lease_ms, ())
        woken = self._waker.claim_on_wake(plan.queues, timeout, plan.batch, interrupt,
                                          self._client)
        results = await self._claim_calls(plan.prefixes, worker_id, woken)
        return await self._fetched(plan, results, ())

    def _plan_fetch(self, queues: Sequence[str], limit: int, worker_id: str, lease_ms: int,
                    settle: Sequence[Settlement]) -> _FetchPlan:
        """The script calls of one fetch: per queue, settle its outcomes and claim (or,
        for several queues, peek at their heads); outcomes of other queues are settled."""
        plan = _FetchPlan(list(dict.fromkeys(queues)), max(limit, 0), worker_id, lease_ms)
        groups = self._settle_groups(settle)
        plan.peek = len(plan.queues) > 1 and plan.limit > 0
        for queue in plan.queues:
            positions = groups.pop(queue, [])
            prefix, slot = plan.prefixes[queue] = self._begin_call(queue, worker_id)
            index = self._queue_script(
                plan.batch, "fetch", queue, "peek" if plan.peek else "claim", plan.limit,
                worker_id, lease_ms, prefix, slot, *self._settle_args(settle, positions))
            plan.calls.append((queue, index, positions))
        plan.others = [(positions, self._queue_script(plan.batch, "settle", queue,
                                                      *self._settle_args(settle, positions)))
                       for queue, positions in groups.items()]
        return plan

    async def _fetched(self, plan: _FetchPlan, results: list[Any],
                       settle: Sequence[Settlement]) -> Fetched:
        settled = [False] * len(settle)
        for positions, index in plan.others:
            for i, ok in zip(positions, results[index], strict=True):
                settled[i] = ok == 1
        claims: list[Claim] = []
        dues: list[int] = []
        heads: list[tuple[float, str, str]] = []
        worker_id, limit = plan.worker_id, plan.limit
        for queue, index, positions in plan.calls:
            flags, leased, values, due, head, now = results[index]
            for i, ok in zip(positions, flags, strict=True):
                settled[i] = ok == 1
            claims += [codec.claim(queue, worker_id, now, lease, v)
                       for lease, v in zip(leased, values, strict=True)]
            dues.append(due)
            heads += [(float(head[j + 1]), head[j], queue) for j in range(0, len(head), 2)]
        if plan.peek:
            more, more_dues = await self._claim_split(heads, max(limit - len(claims), 0),
                                                      worker_id, plan.lease_ms)
            claims += more
            dues += more_dues
            claims.sort(key=lambda c: (-c.job.priority, c.job.scheduled_at))
        next_due = None
        if len(claims) < limit:
            known = [d for d in dues if d >= 0]
            next_due = min(known) if known else None
        if self._waker is not None:
            self._waker.fed(plan.queues, limit, len(claims))
        return Fetched(claims, settled, next_due)

    async def _claim_split(self, heads: list[tuple[float, str, str]], limit: int,
                           worker_id: str, lease_ms: int) -> tuple[list[Claim], list[int]]:
        """Claim the best `limit` of the peeked heads, from each queue its share."""
        heads.sort()
        share = Counter(queue for _, _, queue in heads[:limit])
        batch = Batch()
        queues = list(dict.fromkeys(queue for _, _, queue in heads))
        prefixes: dict[str, tuple[str, int]] = {}
        for queue in queues:
            prefix, slot = prefixes[queue] = self._begin_call(queue, worker_id)
            # a queue with no share still gets a call: it passes its wake-up token on
            self._queue_script(batch, "fetch", queue, "claim", share[queue], worker_id,
                               lease_ms, prefix, slot, 0)
        claims: list[Claim] = []
        dues: list[int] = []
        results = await self._claim_calls(prefixes, worker_id, self._run(batch))
        for queue, (_, leased, values, due, _, now) in zip(queues, results, strict=True):
            claims += [codec.claim(queue, worker_id, now, lease, v)
                       for lease, v in zip(leased, values, strict=True)]
            dues.append(due)
        return claims, dues

    async def settle(self, settlements: Sequence[Settlement]) -> list[bool]:
        settled = [False] * len(settlements)
        batch = Batch()
        calls = [(positions, self._queue_script(batch, "settle", queue,
                                                *self._settle_args(settlements, positions)))
                 for queue, positions in self._settle_groups(settlements).items()]
        results = await self._run(batch)
        for positions, index in calls:
            for i, ok in zip(positions, results[index], strict=True):
                settled[i] = ok == 1
        return settled

    async def heartbeat(self, worker: WorkerInfo, leases: Sequence[Lease],
                        lease_ms: int) -> list[LeaseStatus]:
        statuses = [LeaseStatus.LOST] * len(leases)
        groups: dict[str, list[int]] = {}
        for i, lease in enumerate(leases):
            queue = queue_of_token(lease.token)
            if queue is not None and not any(c in queue for c in "{}"):
                groups.setdefault(queue, []).append(i)
        batch = Batch()
        batch.script("worker_seen", self.keys.workers, [worker.id, codec.worker_json(worker)])
        calls = []
        for queue, positions in groups.items():
            pairs: list[str] = []
            for i in positions:
                pairs += (leases[i].job_id, leases[i].token)
            calls.append((positions, self._queue_script(batch, "extend", queue, lease_ms,
                                                        *pairs)))
        results = await self._run(batch)
        for positions, index in calls:
            for i, status in zip(positions, results[index], strict=True):
                statuses[i] = _LEASE_STATUS[status]
        return statuses

    async def _lease_call(self, name: str, lease: Lease, value_json: str) -> bool:
        queue = queue_of_token(lease.token)
        if queue is None or any(c in queue for c in "{}"):
            return False
        batch = Batch()
        self._queue_script(batch, name, queue, lease.job_id, lease.token, value_json)
        return bool((await self._run(batch))[0])

    async def progress(self, lease: Lease, value: Any) -> bool:
        return await self._lease_call("progress", lease, dumps(value))

    async def log(self, lease: Lease, message: str) -> bool:
        return await self._lease_call("log", lease, dumps(message))

    async def wait_for_work(self, queues: Sequence[str], timeout: float) -> None:
        await self._ready()
        assert self._waker is not None
        await self._waker.wait(queues, timeout)

    # -- maintenance --------------------------------------------------------------------
    async def rescue(self) -> list[str]:
        rescued: list[str] = []
        pending = await self.queue_names()
        for _ in range(20):  # bounded: RESCUE_BATCH jobs per queue per round
            if not pending:
                break
            batch = Batch()
            for queue in pending:
                self._queue_script(batch, "rescue", queue, RESCUE_BATCH)
            results = await self._run(batch)
            for ids in results:
                rescued += ids
            pending = [q for q, ids in zip(pending, results, strict=True)
                       if len(ids) >= RESCUE_BATCH]
        return rescued

    async def prune(self, retention: Retention) -> Pruned:
        names = await self.queue_names()
        batch = Batch()
        for queue in names:
            self._queue_script(
                batch, "prune", queue, retention.batch, retention.completed_max_age_ms,
                retention.completed_max_count, retention.failed_max_age_ms,
                retention.failed_max_count, retention.events_max_age_ms,
                retention.tombstones_max_age_ms)
        batch.script("worker_gone", self.keys.workers, ["older", WORKER_FORGET_MS])
        results = await self._run(batch)
        pruned = Pruned(workers=results[-1])
        cleanup = Batch()
        for queue, (completed, cancelled, failed, events, dropped) in zip(
                names, results, strict=False):
            for state, n in (("completed", completed), ("cancelled", cancelled),
                             ("failed", failed)):
                if n:
                    pruned.by_state[state] = pruned.by_state.get(state, 0) + n
                    pruned.jobs += n
            pruned.events += events
            pruned.tombstones += len(dropped)
            self._unindex(cleanup, queue, dropped)
        await self._run(cleanup)
        return pruned

    async def try_lock(self, name: str, owner: str, ttl_ms: int) -> bool:
        batch = Batch()
        batch.script("try_lock", [self.keys.lock(name)], [owner, max(int(ttl_ms), 1)])
        return bool((await self._run(batch))[0])

    async def unregister_worker(self, worker_id: str) -> None:
        batch = Batch()
        batch.script("worker_gone", self.keys.workers, ["id", worker_id])
        await self._run(batch)

    # -- operators ----------------------------------------------------------------------
    async def get(self, job_id: str) -> Job | None:
        h = await self._job_hash(job_id)
        return None if not h else codec.job(h)

    async def _job_hash(self, job_id: str) -> dict[str, str] | None:
        queue = (await self.locate([job_id])).get(job_id)
        if queue is None:
            return None
        batch = Batch()
        batch.command("HGETALL", self.keys.queue(queue).keys[0] + job_id)
        h: dict[str, str] = (await self._run(batch))[0]
        return h or None

    async def tombstone(self, job_id: str) -> int | None:
        queue = (await self.locate([job_id])).get(job_id)
        if queue is None:
            return None
        batch = Batch()
        batch.command("ZSCORE", self.keys.queue(queue).tombstones, job_id)
        removed_at = (await self._run(batch))[0]
        return None if removed_at is None else int(float(removed_at))

    async def list_jobs(self, where: JobFilter, limit: int = 50,
                        cursor: str | None = None) -> Page:
        if not 1 <= limit <= 1000:
            raise InvalidRequestError("limit must be between 1 and 1000")
        below = "" if cursor is None else codec.decode_cursor(cursor)
        return await reads.list_jobs(self, where, limit, below)

    async def queues(self) -> list[QueueInfo]:
        names = await self.queue_names()
        batch = Batch()
        for queue in names:
            self._queue_script(batch, "queue_info", queue)
        out = []
        for queue, r in zip(names, await self._run(batch), strict=True):
            counts = dict(zip(reads.STATE_ORDER, r[:6], strict=True))
            if any(counts.values()) or r[6] == "1":  # jobs, or paused: a queue
                out.append(QueueInfo(queue, counts, r[6] == "1", None if r[7] < 0 else r[7]))
        return out

    async def workers(self) -> list[WorkerInfo]:
        return await reads.workers(self)

    async def events(self, after: int = 0, limit: int = 500,
                     job_id: str | None = None) -> list[Event]:
        if limit < 1:
            return []
        if job_id is not None:
            return await reads.job_events(self, job_id, max(after, 0), limit)
        return await reads.events(self, max(after, 0), limit)

    async def cancel(self, where: JobFilter) -> list[str]:
        return await reads.act(self, "cancel", (JobState.WAITING, JobState.DELAYED,
                                                JobState.ACTIVE), where)

    async def retry(self, where: JobFilter) -> list[str]:
        return await reads.act(self, "retry", (JobState.FAILED, JobState.CANCELLED), where)

    async def promote(self, where: JobFilter) -> list[str]:
        return await reads.act(self, "promote", (JobState.DELAYED,), where)

    async def remove(self, where: JobFilter) -> list[str]:
        return await reads.act(self, "remove", (
            JobState.WAITING, JobState.DELAYED, JobState.COMPLETED, JobState.FAILED,
            JobState.CANCELLED), where)

    async def set_paused(self, queue: str, paused: bool) -> None:
        batch = Batch()
        batch.command("SADD", self.keys.queues, queue)
        self._queue_script(batch, "set_paused", queue, 1 if paused else 0)
        await self._run(batch)

    # -- used by reads.py ---------------------------------------------------------------
    def queue_call(self, batch: Batch, name: str, queue: str, *args: Any) -> int:
        return self._queue_script(batch, name, queue, *args)

    async def send(self, batch: Batch) -> list[Any]:
        return await self._run(batch)


@dataclass(slots=True)
class _FetchPlan:
    queues: list[str]
    limit: int
    worker_id: str
    lease_ms: int
    peek: bool = False
    batch: Batch = field(default_factory=Batch)
    # queue -> (token prefix, slot) of its claim call
    prefixes: dict[str, tuple[str, int]] = field(default_factory=dict)
    # per queue: its fetch call's index in the batch, and its settlements' positions
    calls: list[tuple[str, int, list[int]]] = field(default_factory=list)
    # settle calls for the queues the worker does not fetch from: positions, index
    others: list[tuple[list[int], int]] = field(default_factory=list)


def _by_queue(jobs: Sequence[NewJob], positions: Iterable[int]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for i in positions:
        groups.setdefault(jobs[i].queue, []).append(i)
    return groups
