"""The Redis keyspace of conveyor: every key, its type and what it holds.

All names start with the prefix (``conveyor`` unless the URL says ``?prefix=``). Every key
carries a hash tag ``{...}`` so that the keys one script touches share one Cluster slot.

Per queue, tag ``{q:<queue>}`` (queue names never contain ``{``, ``}`` or ``:``)::

    P:{q:Q}:job:<id>     hash    one job: id queue task state priority key attempt stalls
                                 max_stalls progress result errors logs created_at
                                 scheduled_at started_at finished_at worker
                                 cancel_requested; call (JSON [args, kwargs]) and opts
                                 (JSON [max_attempts, timeout, backoff, meta]): what only
                                 Python reads travels as two values, since every field
                                 makes each HSET/HMGET of a small (listpack) hash dearer;
                                 token (the lease's; '' once settled), log_count (lines
                                 kept), seq (enqueue order), ev (its latest event id).
                                 An absent field is None; absent counters and lists are
                                 0 and [] (a new job does not store them)
    P:{q:Q}:waiting      zset    waiting jobs in claim order: score -priority, member
                                 "<scheduled_at:13><seq:12>:<id>", so equal scores sort by
                                 due time, then enqueue order (ZPOPMIN claims a batch)
    P:{q:Q}:delayed      zset    not yet due: score scheduled_at, member id
    P:{q:Q}:active       zset    running: score lease deadline, member id
    P:{q:Q}:completed    zset    finished jobs, one set per final state: score finished_at
    P:{q:Q}:failed       zset      (the failed set is the dead-letter set)
    P:{q:Q}:cancelled    zset
    P:{q:Q}:jobs         zset    every job, all scores 0, member "<created_at:13><seq:12>:<id>":
                                 listing newest first and list cursors (ZREVRANGEBYLEX)
    P:{q:Q}:keys         hash    dedup key -> id of the job holding it (unique per queue)
    P:{q:Q}:tombstones   zset    removed job ids: score removed_at
    P:{q:Q}:events       stream  state changes, progress and log lines; entry id "<n>-0"
                                 where n = max(last + 1, now_ms * 1000), so ids only grow
                                 and are tied to time (pruned with XTRIM MINID, capped with
                                 MAXLEN ~: a script's first XADD trims, one that adds more
                                 trims once at its end); fields j (job id) k (kind) d (JSON)
                                 a (at)
    P:{q:Q}:meta         hash    seq (enqueue counter), ev (last event id), paused (1/0),
                                 flow ('1' once a job with limits was stored: the claim
                                 goes through the flow gates), turn (last flow turn)
    P:{q:Q}:wake         list    wake-up tokens for idle workers (BLPOP), at most 16
    P:{q:Q}:meta:dedup   hash    dedup mode key "<task>:<key>" -> id of the newest job that
                                 took it; enqueue_dedup.lua folds by that job's state
                                 (includes/dedup.lua); the job hash holds it as dk
    P:{q:Q}:meta:expiring
                         zset    jobs stored with an expiry: score expires_at (the job
                                 hash's exp); fetch cancels those never started first
                                 (includes/expiry.lua)
    P:{q:Q}:meta:parked  zset    keep_last copies waiting (delayed at 9999-12-31) for the
                                 job in their hash's field after to leave active; fetch
                                 makes them waiting (includes/dedup.lua)
    P:{q:Q}:waiting_children
                         zset    flows (conveyor/flows): jobs waiting for their
                                 dependencies (state waiting-children), score when they
                                 started waiting
    P:{q:Q}:waits:<id>   set     flows: the dependencies of job <id> not resolved yet; a
                                 dependency's end SREMs itself (exactly once) and the job
                                 is released when its hash's `waits` counter reaches 0
    P:{q:Q}:flowjobs:<flow>
                         zset    flows: the ids of one flow's jobs, score enqueue order
                                 A flow's jobs also hold flow_id, parents (JSON {id:
                                 policy}), waits, and, for a job others wait for,
                                 children (JSON [[id, policy], ...]): the one field a
                                 settle reads for flows (lua/includes/dependents.lua).
                                 Redis Cluster: a script reaches one slot, so a flow's
                                 jobs share one queue (refused otherwise)
    P:{q:Q}:schedule:<name>
                         hash    a schedule whose jobs go to Q (redis/schedules.py): its
                                 definition, version, next and last run, counters
    P:{q:Q}:flow:...     flow control (conveyor/flow; lua/includes/flow.lua), present
                         only in a queue that held a job with limits (meta field flow):
      flow:limits        hash    limiter -> declared limit JSON {"rate": [n, window_ms]
                                 | null, "concurrency": n | null} (a worker's start)
      flow:overrides     hash    limiter -> the same, set at runtime (wins)
      flow:g:<group>     zset    a flow group's waiting jobs (group = the job's gates as
                                 JSON; '' = the jobs without limits of this queue), score
                                 and member as in `waiting`, which still lists them all;
                                 an entry whose job left `waiting` otherwise is stale and
                                 dropped by the claim that meets it
      flow:turns         hash    group -> its turn (round robin between groups)
      flow:ready         zset    groups the claim looks at: score -priority of the
                                 group's best job, member "<turn:15>|<group>"
      flow:blocked       zset    groups blocked until a time (score): a full rate window
                                 or a pause
      flow:parked        zset    "<limiter>\n<key>\n<group>", score 0: groups parked on a
                                 full concurrency slot, looked at again when it frees
      flow:slots         hash    "<limiter>\n<key>" -> jobs active through it; a job
                                 claimed through gates has a token ending in '+' and
                                 gives its slots back in the settle or rescue script
      flow:pauses        hash    "<limiter>\n<key>" -> paused until (ms; RateLimited)
      flow:w:<limiter>\n<key>
                         zset    sliding-window log of starts: score start time, member
                                 the lease token; expires one window after its last start
      flow:windows       set     "<limiter>\n<key>" of the window logs (for limits())
    P:{q:Q}:meta:claim:<worker>:<0|1>
                         string  a worker's last claim in one of its two call slots:
                                 token prefix, then JSON [id, ...],
                                 kept for one lease: a claim call repeated after its reply
                                 was lost hands the same jobs over (see fetch.lua)

Global, tag ``{g}``::

    P:{g}:queues         set     every queue name ever used (a queue exists by having jobs)
    P:{g}:workers        hash    worker id -> registration JSON
    P:{g}:worker_started hash    worker id -> first heartbeat (ms)
    P:{g}:worker_seen    zset    worker id, score last heartbeat (ms)
    P:{g}:lock:<name>    string  owner of a named lock, expiring with PX (leadership)
    P:{g}:schedules      hash    schedule name -> its queue (where its hash lives)
    P:{g}:flow_queues    set     queues with stored limits (for limits(); redis/flow.py)

Job id index, tag ``{i:XX}`` with XX = crc32(id) & 0xff in hex (256 shards)::

    P:{i:XX}:ids         hash    job id -> queue: how ``get(id)`` finds a job's queue
                                 (and "flow:<flow id>" -> the queue of that flow)

On one server the enqueue script writes the index entry (HSETNX, which also detects an
id reused in another queue) with the job, atomically. On Cluster a queue's script cannot
touch another slot, so the entry is written *before* the job; a crash between the two
writes leaves at worst an entry pointing at a queue where the id is unknown, which reads
as "no such job". Either way an existing job is always indexed, and the entry is removed
when the job's tombstone is pruned.

Events: one stream per queue, written by the same script as the transition, so no state
change can lack its event. A global ``events(after)`` merges the queues' streams and only
returns ids below a watermark every queue has passed: each read reports the lowest id its
queue can still write (``max(last + 1, now_ms * 1000)``), a queue's first event starts
a millisecond ahead, and the merge stops below the smallest of these. On one server this
is exact (every event is seen once, in id order). On Cluster the watermark is exact for
existing queues whatever the nodes' clocks; the very first events of a queue created on a
node whose clock lags another's by more than a millisecond can fall below a reader's
position and be skipped by that global reader (per-job and per-queue reads are exact).

Lease tokens are ``<queue>:<random>``: a lease alone routes a settle, heartbeat, progress or
log call to its queue's slot without a lookup.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from ...errors import InvalidRequestError

INDEX_SHARDS = 256
WAKE_TOKENS = 16  # keep in step with WAKE_CAP in lua/includes/queue.lua
ORDER_PREFIX = 26  # "<13 digits><12 digits>:" before the id in waiting/jobs members


@dataclass(frozen=True, slots=True)
class QueueKeys:
    """The keys of one queue, in the order every queue script receives them as KEYS."""

    name: str
    keys: tuple[str, ...]

    @property
    def wake(self) -> str:
        return self.keys[-1]

    @property
    def tombstones(self) -> str:
        return self.keys[9]

    @property
    def meta(self) -> str:
        return self.keys[11]


QUEUE_KEY_NAMES = ("job:", "waiting", "delayed", "active", "completed", "failed", "cancelled",
                   "jobs", "keys", "tombstones", "events", "meta", "wake")


class Keyspace:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._queues: dict[str, QueueKeys] = {}
        g = f"{prefix}:{{g}}:"
        self.queues = g + "queues"
        self.workers = (g + "workers", g + "worker_started", g + "worker_seen")

    def queue(self, name: str) -> QueueKeys:
        keys = self._queues.get(name)
        if keys is None:
            if not name or any(c in name for c in "{}:"):
                raise InvalidRequestError(f"bad queue name {name!r} for redis")
            base = f"{self.prefix}:{{q:{name}}}:"
            keys = self._queues[name] = QueueKeys(
                name, tuple(base + part for part in QUEUE_KEY_NAMES))
        return keys

    def lock(self, name: str) -> str:
        return f"{self.prefix}:{{g}}:lock:{name}"

    def index(self, job_id: str) -> str:
        shard = zlib.crc32(job_id.encode()) & (INDEX_SHARDS - 1)
        return f"{self.prefix}:{{i:{shard:02x}}}:ids"


def queue_of_token(token: str) -> str | None:
    """The queue a lease token was issued by, or None for a token this backend never made."""
    queue, sep, rest = token.partition(":")
    return queue if sep and queue and rest else None
