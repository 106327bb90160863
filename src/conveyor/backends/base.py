"""The backend contract: the one interface every storage engine implements.

It is named after the job lifecycle, not after storage. Every verb that changes a job is
one atomic operation in the engine (one transaction, one script), and every time it needs
("now", a delay's due time, a lease's deadline) comes from the engine's own clock.

Lifecycle       enqueue · fetch · settle · heartbeat · progress · log · wait_for_work
                fetch_when_ready (has a default: wait_for_work, then fetch)
Maintenance     rescue · prune · try_lock · unregister_worker · now
                prune_pass (has a default: prune until done or out of time)
Operators       get · tombstone · list_jobs · queues · workers · events · event_head
                paused_queues (has a default: read from queues)
                cancel · retry · promote · remove · set_paused
Schedules       schedules · save_schedule · delete_schedule · fire_schedules (schedules.py)
Flows           enqueue_flow · spawn · flow_jobs · cancel_flow (conveyor/flows; a dependent is
                released by the same settle, rescue or cancel that finishes its last
                dependency, and revived by the retry of the dependency that failed it)
Flow control    declare_limits · set_limit · limits · flow_blockers (conveyor/flow)
Sync callers    run_inline (a backend with `capabilities.inline_sync`)

A worker holds a *lease* on each job it runs: the job id plus a random token that the
claim issued. `settle`, `heartbeat`, `progress` and `log` carry the token and are refused
(answered False / LOST) once the lease is gone, so a worker that lost its job can never
overwrite the outcome of the worker that took it over.

How sync code calls a backend
-----------------------------
Every verb is a coroutine. The app's sync API (``task.enqueue()``, ``app.get_job()``...)
calls one in one of two ways, chosen by `Capabilities.inline_sync`:

- **inline** (``inline_sync=True``): ``backend.run_inline(backend.verb, *args)`` runs the
  verb on the caller's thread with no event loop and must come back without suspending
  (a verb that does suspend raises RuntimeError, it is never left half-run). While it
  runs, `is_inline()` is True and the backend uses blocking I/O: SQLite runs its
  transaction on the caller's thread; Redis sends the batch on a synchronous client.
  The default `run_inline` does exactly this; a backend that opts in only has to
  branch on `is_inline()` wherever it would await I/O. Costs one call: no thread hop,
  no loop, no second connection per call.
- **portal** (``inline_sync=False``, the default): the app runs the verb on a private
  event-loop thread with a backend instance of its own (``_Portal`` in app.py). Any
  backend works this way unchanged; it costs a thread hop per call (tens of µs).

A new backend (PostgreSQL: psycopg has both a blocking and an async connection) starts
on the portal and opts in once every verb branches on `is_inline()`; the conformance
suite's sync tests then run its verbs both ways.
"""

from __future__ import annotations

import abc
import asyncio
import enum
from collections.abc import Callable, Coroutine, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..dedup import DedupSpec
from ..errors import ConfigurationError
from ..jobs import Event, Job, JobState
from ..stopping import cancel_until_done
from .schedules import ScheduleStore


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend can do beyond the contract; tests skip by these, never by name."""

    multi_process: bool = True  # several processes may share it
    multi_host: bool = False  # workers on other machines may share it
    blocking_wakeup: bool = False  # wait_for_work returns as soon as work arrives
    # run_inline finishes every verb on the caller's thread (see the module docstring);
    # False: the app's sync API goes through a private event loop thread instead
    inline_sync: bool = False
    flow_control: bool = False  # rate limits and concurrency caps decided in the claim
    flows: bool = False  # jobs that wait for other jobs (enqueue_flow and its verbs)
    # a flow's jobs may live in several queues (Redis: no, a flow is one queue's slot)
    flows_across_queues: bool = False


T = TypeVar("T")
_INLINE: ContextVar[bool] = ContextVar("conveyor_inline", default=False)


def is_inline() -> bool:
    """True while `Backend.run_inline` runs a verb: use blocking I/O, never suspend."""
    return _INLINE.get()


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job to store. Arguments arrive already validated and JSON-encoded by the app."""

    id: str
    queue: str
    task: str
    args_json: str
    kwargs_json: str
    priority: int = 0
    key: str | None = None  # dedup key, unique within the queue while the job is kept
    delay_ms: int = 0  # due this long after the backend's "now"
    run_at_ms: int | None = None  # or at this absolute time (wins over delay_ms)
    max_attempts: int = 3
    max_stalls: int = 1
    timeout: float | None = None
    backoff_json: str | None = None
    meta_json: str = "{}"
    flow: str | None = None  # its flow group: gates as canonical JSON (conveyor/flow)
    # flows (conveyor/flows, enqueue_flow only): the flow's id and the jobs this one
    # waits for, as (job id, failure policy "fail" | "continue" | "skip")
    flow_id: str | None = None
    parents: tuple[tuple[str, str], ...] = ()
    dedup: DedupSpec | None = None  # fold into the key's holder instead (conveyor/dedup.py)
    expires_ms: int | None = None  # not started this long after the enqueue: cancelled

    @property
    def special(self) -> bool:
        """Needs the enqueue path that decides dedup modes and records expiry."""
        return self.dedup is not None or self.expires_ms is not None


@dataclass(frozen=True, slots=True)
class Enqueued:
    job: Job
    created: bool  # False: a job with the same key already existed and is returned instead


@dataclass(frozen=True, slots=True)
class Lease:
    job_id: str
    token: str


@dataclass(frozen=True, slots=True)
class Claim:
    """A job a worker now holds, with the lease token it must present to settle it."""

    job: Job
    token: str

    @property
    def lease(self) -> Lease:
        return Lease(self.job.id, self.token)


class Outcome(enum.StrEnum):
    COMPLETED = "completed"  # result_json holds the result
    FAILED = "failed"  # error holds the entry; retry_in_ms None = final, else retry after it
    CANCELLED = "cancelled"
    RELEASED = "released"  # handed back unfinished (shutdown): waiting again, attempt uncharged
    # the task raised RateLimited: waiting again, attempt uncharged, and the job's gates
    # (or only `limiter`) paused for retry_in_ms for every worker; a job without gates
    # waits delayed that long instead
    RATE_LIMITED = "rate_limited"
    # the attempt spawned children (`Backend.spawn`): the job waits for them
    # (waiting-children; waiting at once if they have all finished) and then runs again,
    # this attempt not charged
    WAIT_CHILDREN = "wait_children"


@dataclass(frozen=True, slots=True)
class Settlement:
    job_id: str
    token: str
    outcome: Outcome
    result_json: str | None = None
    error: dict[str, Any] | None = None
    retry_in_ms: int | None = None
    limiter: str | None = None  # RATE_LIMITED: pause this limiter only


@dataclass(frozen=True, slots=True)
class Fetched:
    claims: list[Claim]
    settled: list[bool]  # one per settlement passed to fetch, False where the lease was lost
    next_due_in_ms: int | None  # how long until the next delayed job of these queues is due


class LeaseStatus(enum.StrEnum):
    HELD = "held"
    LOST = "lost"  # taken back (expired and rescued) or settled elsewhere
    CANCEL_REQUESTED = "cancel_requested"


# When a worker counts as stale everywhere (CLI, dashboard, `conveyor check`): workers
# heartbeat every second or so, so this is many missed heartbeats; it likely crashed, hangs
# or lost the backend.
STALE_AFTER_MS = 30_000


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    id: str
    host: str
    pid: int
    queues: tuple[str, ...]
    concurrency: int
    in_flight: int = 0
    started_at: int | None = None  # set by the backend on first heartbeat
    last_seen_at: int | None = None  # set by the backend
    group: str | None = None  # the supervisor's id, shared by its worker processes (-p N)

    def is_stale(self, now: int) -> bool:
        """Silent for longer than STALE_AFTER_MS (by the backend's clock `now`)."""
        return self.last_seen_at is None or now - self.last_seen_at > STALE_AFTER_MS


@dataclass(frozen=True, slots=True)
class QueueInfo:
    name: str
    counts: dict[JobState, int]
    paused: bool
    oldest_waiting_at: int | None


@dataclass(frozen=True, slots=True)
class LimitUse:
    """What one key of a limiter is using now."""

    key: str  # '' = the limiter's shared budget
    active: int = 0  # jobs running through it (concurrency slots taken)
    starts: int = 0  # starts in the current window of its rate
    paused_until: int | None = None  # paused by a task's RateLimited until then


@dataclass(frozen=True, slots=True)
class LimitInfo:
    """A limiter stored in a queue: its limits (JSON form, conveyor/flow/spec.py) and use."""

    queue: str
    name: str
    declared: dict[str, Any] | None  # as declared in code (written by a starting worker)
    override: dict[str, Any] | None  # changed at runtime; wins over `declared`
    use: tuple[LimitUse, ...] = ()
    # key -> waiting jobs the claim found held back *by this limiter* under that key (its
    # concurrency key for a full slot, its rate key for a full window or a pause); a job
    # that passes this limiter but waits on another is not counted here
    blocked: dict[str, int] = field(default_factory=dict)

    @property
    def effective(self) -> dict[str, Any] | None:
        return self.override if self.override is not None else self.declared


@dataclass(frozen=True, slots=True)
class JobFilter:
    """Which jobs a listing or bulk action means. Empty fields match everything."""

    queue: str | None = None
    states: tuple[JobState, ...] = ()
    task: str | None = None
    search: str | None = None  # text in the id, arguments or errors
    ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Page:
    jobs: list[Job]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Retention:
    """How long finished jobs are kept; the worker's maintenance applies it."""

    completed_max_age_ms: int = 24 * 3600 * 1000
    completed_max_count: int = 10_000  # per queue
    failed_max_age_ms: int = 14 * 24 * 3600 * 1000
    failed_max_count: int = 100_000  # per queue
    events_max_age_ms: int = 24 * 3600 * 1000
    tombstones_max_age_ms: int = 14 * 24 * 3600 * 1000
    # per queue (SQLite keeps one table for all queues: this many times the queues it has)
    tombstones_max_count: int = 100_000
    batch: int = 5_000  # rows removed per transaction, so writers never wait long
    # how long one maintenance pass may keep pruning; a pass that leaves work over is
    # followed by another at the next heartbeat, so pruning keeps pace with any write rate
    pass_seconds: float = 1.0


@dataclass(slots=True)
class Pruned:
    jobs: int = 0
    events: int = 0
    tombstones: int = 0
    workers: int = 0
    by_state: dict[str, int] = field(default_factory=dict)
    more: bool = False  # a rule removed a full batch: more may be due

    def add(self, other: Pruned) -> None:
        self.jobs += other.jobs
        self.events += other.events
        self.tombstones += other.tombstones
        self.workers += other.workers
        for state, n in other.by_state.items():
            self.by_state[state] = self.by_state.get(state, 0) + n
        self.more = other.more


class Backend(ScheduleStore, abc.ABC):
    """A storage engine for jobs. Instances are bound to one event loop once opened."""

    capabilities: Capabilities = Capabilities()
    url: str

    # -- life of the connection ---------------------------------------------------------
    @abc.abstractmethod
    async def open(self) -> None:
        """Connect, create the schema if needed, check durability settings."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def now(self) -> int:
        """The backend's clock, in ms since the epoch."""

    def run_inline(self, verb: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        """Run `verb` (one of this backend's verbs) to its end on the caller's thread,
        without an event loop; only called when `capabilities.inline_sync` is True.

        The verb runs with `is_inline()` True and must finish without suspending; one
        that suspends is closed and RuntimeError raised (a backend bug, never user input).
        """
        token = _INLINE.set(True)
        try:
            coro = verb(*args)
            try:
                coro.send(None)
            except StopIteration as done:
                value: T = done.value
                return value
            coro.close()
            raise RuntimeError(f"{type(self).__name__}.{getattr(verb, '__name__', verb)} "
                               "suspended during an inline (sync) call")
        finally:
            _INLINE.reset(token)

    # -- producers ----------------------------------------------------------------------
    @abc.abstractmethod
    async def enqueue(self, jobs: Sequence[NewJob]) -> list[Enqueued]:
        """Store jobs, atomically per queue (all of a queue's jobs in the call, or none).

        A job whose key is held by a job of the same queue returns that job instead
        (`created` False); keys are scoped to their queue so each queue can live on one
        shard (Redis Cluster slot)."""

    # -- workers ------------------------------------------------------------------------
    @abc.abstractmethod
    async def fetch(
        self,
        queues: Sequence[str],
        limit: int,
        worker_id: str,
        lease_ms: int,
        settle: Sequence[Settlement] = (),
    ) -> Fetched:
        """Settle `settle`, promote due delayed jobs, then claim up to `limit` waiting jobs
        of unpaused `queues` (highest priority, then earliest due), in one operation."""

    @abc.abstractmethod
    async def settle(self, settlements: Sequence[Settlement]) -> list[bool]:
        """Record outcomes; False where the lease was no longer held (nothing changed)."""

    @abc.abstractmethod
    async def heartbeat(
        self, worker: WorkerInfo, leases: Sequence[Lease], lease_ms: int
    ) -> list[LeaseStatus]:
        """Register the worker as alive and extend each held lease by `lease_ms`."""

    @abc.abstractmethod
    async def progress(self, lease: Lease, value: Any) -> bool: ...

    @abc.abstractmethod
    async def log(self, lease: Lease, message: str) -> bool: ...

    @abc.abstractmethod
    async def wait_for_work(self, queues: Sequence[str], timeout: float) -> None:
        """Return when work may have arrived for `queues`, or after `timeout` seconds."""

    async def fetch_when_ready(
        self,
        queues: Sequence[str],
        limit: int,
        worker_id: str,
        lease_ms: int,
        timeout: float,
        interrupt: asyncio.Event,
    ) -> Fetched:
        """An idle worker's claim: wait until work may have arrived for `queues`,
        `timeout` seconds pass or `interrupt` is set, then `fetch` (nothing to settle).

        This version waits, then fetches. A backend with blocking wake-ups does better
        by sending the claim along with the wait, so the server runs it the moment work
        arrives: one round trip less between an enqueue and the job's start."""
        if not interrupt.is_set():
            waiting = asyncio.ensure_future(self.wait_for_work(queues, timeout))
            stop = asyncio.ensure_future(interrupt.wait())
            try:
                await asyncio.wait({waiting, stop}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                errors = await cancel_until_done(waiting, stop)
            if errors:
                raise errors[0]
        return await self.fetch(queues, limit, worker_id, lease_ms)

    # -- maintenance --------------------------------------------------------------------
    @abc.abstractmethod
    async def rescue(self) -> list[str]:
        """Take back active jobs whose lease expired: waiting again (stalls + 1) or, past
        max_stalls, failed; cancelled if a cancel was pending. Returns their ids."""

    @abc.abstractmethod
    async def prune(self, retention: Retention) -> Pruned:
        """Apply retention, at most `retention.batch` rows per rule and queue in one
        call; `more` says a rule was cut at its batch."""

    async def prune_pass(self, retention: Retention) -> Pruned:
        """One maintenance pass: `prune` again while work is left, for at most
        `retention.pass_seconds`. `more` set: work is left for the next pass."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + retention.pass_seconds
        total = Pruned()
        while True:
            total.add(await self.prune(retention))
            if not total.more or loop.time() >= deadline:
                return total

    @abc.abstractmethod
    async def try_lock(self, name: str, owner: str, ttl_ms: int) -> bool:
        """Take or renew a named lock (leadership) until ttl passes without renewal."""

    @abc.abstractmethod
    async def unregister_worker(self, worker_id: str) -> None: ...

    # -- operators ----------------------------------------------------------------------
    @abc.abstractmethod
    async def get(self, job_id: str) -> Job | None: ...

    @abc.abstractmethod
    async def tombstone(self, job_id: str) -> int | None:
        """When a job with this id was removed (retention or explicit), if it was."""

    @abc.abstractmethod
    async def list_jobs(
        self, where: JobFilter, limit: int = 50, cursor: str | None = None
    ) -> Page:
        """Newest first; `cursor` continues a previous page (InvalidRequestError if bad)."""

    @abc.abstractmethod
    async def queues(self) -> list[QueueInfo]: ...

    async def paused_queues(self) -> set[str]:
        """The names of the paused queues. The default reads `queues()`; a backend whose
        per-state counts cost a scan answers from its pause flags alone."""
        return {q.name for q in await self.queues() if q.paused}

    @abc.abstractmethod
    async def workers(self) -> list[WorkerInfo]: ...

    @abc.abstractmethod
    async def events(
        self, after: int = 0, limit: int = 500, job_id: str | None = None
    ) -> list[Event]:
        """Events with id > `after`, oldest first."""

    @abc.abstractmethod
    async def event_head(self) -> int:
        """The id of the newest event recorded (0 if none ever was): a reader that starts
        from here with `events(after=head)` sees only what happens from now on."""

    @abc.abstractmethod
    async def cancel(self, where: JobFilter) -> list[str]:
        """Waiting and delayed jobs end cancelled at once; active ones get a cancel request
        their worker acts on. Returns the ids affected."""

    @abc.abstractmethod
    async def retry(self, where: JobFilter) -> list[str]:
        """Failed and cancelled jobs go back to waiting with a fresh set of attempts."""

    @abc.abstractmethod
    async def promote(self, where: JobFilter) -> list[str]:
        """Delayed jobs become due now."""

    @abc.abstractmethod
    async def remove(self, where: JobFilter) -> list[str]:
        """Delete jobs that are not active, leaving a tombstone."""

    @abc.abstractmethod
    async def set_paused(self, queue: str, paused: bool) -> None: ...

    # -- flows (conveyor/flows) -------------------------------------------------------
    async def enqueue_flow(self, jobs: Sequence[NewJob]) -> list[Job]:
        """Store one flow, all of it or nothing: jobs with `parents` start in
        waiting-children (the rest as `enqueue` would). Parents must come earlier in
        `jobs`, and every job carries the same `flow_id`; a reused id, a dedup key or
        an unknown parent raise InvalidRequestError and store nothing."""
        raise ConfigurationError(f"{type(self).__name__} does not support flows")

    async def spawn(self, lease: Lease, jobs: Sequence[NewJob]) -> list[Job]:
        """Store `jobs` as children of the running job (its lease must hold): each is a
        dependency of it ("continue": it runs again whatever they end as), in its flow
        (the job's own id when it has none). Its attempt then settles WAIT_CHILDREN.
        InvalidFlowError for a lost lease, a child with a dedup key or parents, or (Redis)
        a child in another queue; nothing is stored then."""
        raise ConfigurationError(f"{type(self).__name__} does not support flows")

    async def flow_jobs(self, flow_id: str) -> list[Job]:
        """Every job of a flow, in the order they were stored ([] if none)."""
        return []

    async def cancel_flow(self, flow_id: str) -> list[str]:
        """Cancel what has not run yet: jobs waiting for dependencies end cancelled first
        (dependents before their dependencies, so none ends failed by a cancelled one),
        then waiting and delayed jobs; running ones get a cancel request."""
        return []

    # -- flow control (conveyor/flow) ------------------------------------------------
    @abc.abstractmethod
    async def declare_limits(self, limits: Sequence[tuple[str, str, dict[str, Any]]]) -> None:
        """Store the limits an app declares in code: (queue, limiter, limit JSON)."""

    @abc.abstractmethod
    async def set_limit(self, queue: str, name: str, limit: dict[str, Any] | None) -> None:
        """Override a limiter at runtime (None: back to its declared limit); the next
        claim applies it."""

    @abc.abstractmethod
    async def limits(self) -> list[LimitInfo]:
        """Every stored limiter with its current use and the jobs it blocks."""

    @abc.abstractmethod
    async def flow_blockers(self, job_id: str) -> list[dict[str, Any]]:
        """Why a waiting job's gates keep it from starting now ([] if they do not): dicts
        with reason 'rate_limited' | 'paused' (limiter, key, until) or 'concurrency_full'
        (limiter, key, used, limit)."""

