"""The Redis backend: every transition is one Lua script on one queue's slot.

The hot path costs one round trip per batch: `fetch` settles the previous batch, promotes
due delayed jobs and claims the next batch in one script call (two round trips only for a
worker of several queues, which first peeks at each queue's head to split its batch by
priority). `enqueue` costs one (two on Cluster, where the job id index lives in other
slots than the queue: see cluster.py). Heartbeats renew every lease of a worker in one
pipeline.

connection.py  the clients (the event loop's and the sync API's) and sending a batch
claims.py      fetch and settle, and repeating a claim whose reply was lost
cluster.py     enqueue on Redis Cluster
reads.py       operator calls that span queues (listings, events, bulk actions)
flow.py        flow control: stored limits, their use, why a job waits (the claim's
               gates are lua/includes/flow.lua, inside fetch.lua)

Operator calls (listing, counts, events, bulk actions) visit every queue in one pipeline
per step, each queue's part done by a bounded script.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

from ...errors import EnqueueOutcomeUnknownError, InvalidRequestError
from ...jobs import Event, Job, JobState
from ...serialization import dumps
from ..base import (
    Backend,
    Capabilities,
    Enqueued,
    Fetched,
    JobFilter,
    Lease,
    LeaseStatus,
    LimitInfo,
    NewJob,
    Page,
    Pruned,
    QueueInfo,
    Retention,
    Settlement,
    WorkerInfo,
    is_inline,
)
from . import cluster, codec, dependencies, flow, reads
from .claims import Claims
from .connect import parse_url
from .connection import Connection
from .keyspace import queue_of_token
from .schedules import RedisSchedules
from .scripts import Batch, OutcomeUnknown
from .wakeup import MIN_BLOCK

RESCUE_BATCH = 1000
WORKER_FORGET_MS = 3600 * 1000
_LEASE_STATUS = {0: LeaseStatus.LOST, 1: LeaseStatus.HELD, 2: LeaseStatus.CANCEL_REQUESTED}


class RedisBackend(RedisSchedules, Backend):
    # inline_sync: inline calls go through a synchronous client on the caller's thread
    capabilities = Capabilities(multi_process=True, multi_host=True, blocking_wakeup=True,
                                inline_sync=True, flow_control=True, flows=True)

    def __init__(self, url: str) -> None:
        self.url = url
        self.settings = parse_url(url)
        self.conn = Connection(self.settings)
        self.keys = self.conn.keys
        self._claims = Claims(self.conn)

    @property
    def cluster(self) -> bool:  # type: ignore[override]  # schedules.py declares it plainly
        """Whether the server is a Redis Cluster (known once connected)."""
        return self.conn.cluster

    async def _run(self, batch: Batch) -> list[Any]:
        return await self.conn.run(batch)

    async def _connected(self) -> None:
        await self.conn.connected()

    # -- life ---------------------------------------------------------------------------
    async def open(self) -> None:
        await self.conn.connected()

    async def close(self) -> None:
        await self.conn.close()

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
        try:
            await self.conn.connected()
            if self.cluster:
                return await cluster.enqueue(self.conn, jobs)
            return await self._enqueue(jobs)
        except OutcomeUnknown as exc:
            raise EnqueueOutcomeUnknownError(
                f"redis may or may not have stored {len(jobs)} job(s) ({exc}): enqueue the "
                "same prepared jobs again, their ids make that safe (over HTTP: repeat the "
                "request with the same Idempotency-Key)", [new.id for new in jobs]) from exc

    async def _enqueue(self, jobs: Sequence[NewJob]) -> list[Enqueued]:
        out: list[Enqueued | None] = [None] * len(jobs)
        groups = cluster.by_queue(jobs, range(len(jobs)))
        batch = Batch()
        for queue, positions in groups.items():
            keys = [*self.keys.queue(queue).keys, self.keys.queues]
            shards: dict[str, int] = {}
            args: list[Any] = [self.settings.events_max_len, queue, 1]
            special = any(jobs[i].special for i in positions)
            for i in positions:
                shard = self.keys.index(jobs[i].id)
                place = shards.get(shard)
                if place is None:
                    keys.append(shard)
                    place = shards[shard] = len(keys)
                args += codec.new_job_args(jobs[i])
                args.append(place)
                if special:
                    args += codec.once_args(jobs[i])
                args.append(jobs[i].flow or "")  # the flow group: always the last value
            batch.script("enqueue_dedup" if special else "enqueue", keys, args)
        elsewhere: list[int] = []
        for positions, stored in zip(groups.values(), await self._run(batch), strict=True):
            for i, reply in zip(positions, stored, strict=True):
                if reply[0] == 2:
                    elsewhere.append(i)
                else:
                    out[i] = cluster.enqueued(jobs[i], reply)
        for i in elsewhere:  # the id is another queue's: that job, or a stale index entry
            out[i] = (await cluster.job_elsewhere(self.conn, jobs[i])
                      or (await self._enqueue([jobs[i]]))[0])
        return [e for e in out if e is not None]

    # -- workers ------------------------------------------------------------------------
    async def fetch(self, queues: Sequence[str], limit: int, worker_id: str, lease_ms: int,
                    settle: Sequence[Settlement] = ()) -> Fetched:
        return await self._claims.fetch(queues, limit, worker_id, lease_ms, settle)

    async def fetch_when_ready(self, queues: Sequence[str], limit: int, worker_id: str,
                               lease_ms: int, timeout: float,
                               interrupt: asyncio.Event) -> Fetched:
        """On one server the claim goes out behind the BLPOP, on the same connection, and
        runs in Redis the moment a wake-up token arrives (see wakeup.py)."""
        if is_inline() or timeout < MIN_BLOCK or interrupt.is_set():
            return await super().fetch_when_ready(queues, limit, worker_id, lease_ms,
                                                  timeout, interrupt)
        await self.conn.ready()
        if self.cluster:
            return await super().fetch_when_ready(queues, limit, worker_id, lease_ms,
                                                  timeout, interrupt)
        return await self._claims.fetch_on_wake(queues, limit, worker_id, lease_ms, timeout,
                                                interrupt)

    async def settle(self, settlements: Sequence[Settlement]) -> list[bool]:
        return await self._claims.settle(settlements)

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
            calls.append((positions, self.conn.queue_script(batch, "extend", queue, lease_ms,
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
        self.conn.queue_script(batch, name, queue, lease.job_id, lease.token, value_json)
        return bool((await self._run(batch))[0])

    async def progress(self, lease: Lease, value: Any) -> bool:
        return await self._lease_call("progress", lease, dumps(value))

    async def log(self, lease: Lease, message: str) -> bool:
        return await self._lease_call("log", lease, dumps(message))

    async def wait_for_work(self, queues: Sequence[str], timeout: float) -> None:
        await self.conn.ready()
        assert self.conn.waker is not None
        await self.conn.waker.wait(queues, timeout)

    # -- maintenance --------------------------------------------------------------------
    async def rescue(self) -> list[str]:
        rescued: list[str] = []
        pending = await self.queue_names()
        for _ in range(20):  # bounded: RESCUE_BATCH jobs per queue per round
            if not pending:
                break
            batch = Batch()
            for queue in pending:
                self.conn.queue_script(batch, "rescue", queue, RESCUE_BATCH)
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
            self.conn.queue_script(
                batch, "prune", queue, retention.batch, retention.completed_max_age_ms,
                retention.completed_max_count, retention.failed_max_age_ms,
                retention.failed_max_count, retention.events_max_age_ms,
                retention.tombstones_max_age_ms, retention.tombstones_max_count)
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
            pruned.more = pruned.more or retention.batch <= max(
                completed, cancelled, failed, len(dropped))
            self.conn.unindex(cleanup, queue, dropped)
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
            self.conn.queue_script(batch, "queue_info", queue)
        out = []
        for queue, r in zip(names, await self._run(batch), strict=True):
            counts = dict(zip(reads.STATE_ORDER, r[:6], strict=True))
            counts[JobState.WAITING_CHILDREN] = r[8]
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

    async def event_head(self) -> int:
        """The highest last event id of any queue (each queue's meta hash keeps its own)."""
        names = await self.queue_names()
        batch = Batch()
        for queue in names:
            batch.command("HGET", self.keys.queue(queue).meta, "ev")
        return max((int(ev) for ev in await self._run(batch) if ev is not None), default=0)

    async def cancel(self, where: JobFilter) -> list[str]:
        return await reads.act(self, "cancel", (JobState.WAITING, JobState.DELAYED,
                                                JobState.ACTIVE, JobState.WAITING_CHILDREN),
                               where)

    async def retry(self, where: JobFilter) -> list[str]:
        return await reads.act(self, "retry", (JobState.FAILED, JobState.CANCELLED), where)

    async def promote(self, where: JobFilter) -> list[str]:
        return await reads.act(self, "promote", (JobState.DELAYED,), where)

    async def remove(self, where: JobFilter) -> list[str]:
        return await reads.act(self, "remove", (
            JobState.WAITING, JobState.DELAYED, JobState.COMPLETED, JobState.FAILED,
            JobState.CANCELLED, JobState.WAITING_CHILDREN), where)

    # -- flows (redis/dependencies.py) ------------------------------------------------
    async def enqueue_flow(self, jobs: Sequence[NewJob]) -> list[Job]:
        await self.conn.connected()
        return await dependencies.enqueue_flow(self.conn, jobs)

    async def spawn(self, lease: Lease, jobs: Sequence[NewJob]) -> list[Job]:
        await self.conn.connected()
        return await dependencies.spawn(self.conn, lease, jobs)

    async def flow_jobs(self, flow_id: str) -> list[Job]:
        return await dependencies.flow_jobs(self.conn, flow_id)

    async def cancel_flow(self, flow_id: str) -> list[str]:
        return await dependencies.cancel_flow(self.conn, flow_id)

    async def set_paused(self, queue: str, paused: bool) -> None:
        batch = Batch()
        batch.command("SADD", self.keys.queues, queue)
        self.conn.queue_script(batch, "set_paused", queue, 1 if paused else 0)
        await self._run(batch)

    # -- flow control (flow.py; the claim's side is lua/includes/flow.lua) -------------
    async def declare_limits(self, limits: Sequence[tuple[str, str, dict[str, Any]]]) -> None:
        await flow.declare_limits(self.conn, limits)

    async def set_limit(self, queue: str, name: str, limit: dict[str, Any] | None) -> None:
        await flow.set_limit(self.conn, queue, name, limit)

    async def limits(self) -> list[LimitInfo]:
        return await flow.limits(self.conn)

    async def flow_blockers(self, job_id: str) -> list[dict[str, Any]]:
        return await flow.flow_blockers(self.conn, job_id)

    # -- used by reads.py ---------------------------------------------------------------
    def queue_call(self, batch: Batch, name: str, queue: str, *args: Any) -> int:
        return self.conn.queue_script(batch, name, queue, *args)

    async def send(self, batch: Batch) -> list[Any]:
        return await self._run(batch)

    async def queue_names(self) -> list[str]:
        return await self.conn.queue_names()

    async def locate(self, job_ids: Iterable[str]) -> dict[str, str]:
        """The queue of each indexed job id."""
        return await self.conn.locate(job_ids)
