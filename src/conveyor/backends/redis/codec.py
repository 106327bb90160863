"""Translating between conveyor's records and what the Lua scripts take and return."""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from typing import Any

from ...errors import InvalidRequestError
from ...jobs import Event, Job, JobState
from ...serialization import dumps, loads
from ..base import Claim, NewJob, Outcome, Settlement, WorkerInfo

STATES = {state.value: state for state in JobState}
_MEMBER = re.compile(r"^\d{25}:.+$")


def fields(flat: Sequence[str]) -> dict[str, str]:
    """An HGETALL reply passed through Lua (a flat list) as a dict."""
    it = iter(flat)
    return dict(zip(it, it, strict=True))


# -- jobs ----------------------------------------------------------------------------
# The one list of a job's fields, in `Job`'s order: the job-hash field each is read from
# and how. "call" holds [args, kwargs] and "opts" [max_attempts, timeout, backoff, meta]
# as JSON (fewer hash fields make every HSET and HMGET of a job cheaper): a field read
# from one names its element ("call.0"). Adding a field to Job is one line here (plus
# writing it in enqueue.lua, and in CLAIM_FIELDS if a claim must read it).
JOB_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("id", "id", "text"),
    ("queue", "queue", "text"),
    ("task", "task", "text"),
    ("args", "call.0", "value"),
    ("kwargs", "call.1", "value"),
    ("state", "state", "state"),
    ("priority", "priority", "int"),
    ("key", "key", "text"),
    ("attempt", "attempt", "int"),
    ("max_attempts", "opts.0", "value"),
    ("stalls", "stalls", "int"),
    ("max_stalls", "max_stalls", "int"),
    ("timeout", "opts.1", "float?"),
    ("backoff", "opts.2", "value"),
    ("meta", "opts.3", "value"),
    ("progress", "progress", "json"),
    ("result", "result", "json"),
    ("errors", "errors", "list"),
    ("logs", "logs", "list"),
    ("created_at", "created_at", "int"),
    ("scheduled_at", "scheduled_at", "int"),
    ("started_at", "started_at", "int?"),
    ("finished_at", "finished_at", "int?"),
    ("worker", "worker", "text"),
    ("cancel_requested", "cancel_requested", "flag"),
    ("flow_id", "flow_id", "text"),
    ("parents", "parents", "dict"),
    ("waits", "waits", "int"),
)

# How each kind of stored text ({v}, None where the hash lacks the field) is read.
_READ = {
    "text": "{v}",
    "value": "{v}",  # an element of a decoded JSON field
    "state": "STATES[{v}]",
    "int": "int({v} or 0)",  # counters a job does not store until they move read as 0
    "int?": "None if {v} is None else int({v})",
    "float?": "None if {v} is None else float({v})",
    "json": "None if {v} is None else loads({v})",
    "list": "[] if {v} is None else loads({v})",
    "dict": "{{}} if {v} is None else loads({v})",
    "flag": "{v} == '1'",
}

# The order of CLAIM_FIELDS in lua/includes/queue.lua: what a claim reads of the job.
CLAIM_FIELDS = ("state", "attempt", "task", "call", "opts", "priority", "key", "max_stalls",
                "stalls", "progress", "errors", "logs", "created_at", "scheduled_at")
# What a claim decided rather than read: the job's queue, the lease, the time of the claim.
_CLAIMED = {"id": "lease[0]", "queue": "queue", "state": "'active'", "attempt": "lease[1]",
            "started_at": "now", "worker": "worker"}


def _decoder(name: str, params: str, source: dict[str, str]) -> Any:
    """Compile a function that builds a Job from `source` (field -> an expression of
    `params` giving its stored text, None where absent; "call.0"-style entries give an
    element already decoded): positional arguments, as dataclasses compile their own
    __init__. A decoder written out by hand costs the same; one made from JOB_FIELDS
    cannot miss a field. Keyword arguments would cost twice as much, and claims and
    enqueues run once per job on their hot paths."""
    lines = [f"def {name}({params}):"]
    lines += [f"    {whole} = loads({source[whole]})" for whole in ("call", "opts")
              if whole in source]
    args = []
    for _, field, how in JOB_FIELDS:
        whole, _, part = field.partition(".")
        element = part and field not in source  # read from the decoded whole
        text = f"{whole}[{part}]" if element else source.get(field, "None")
        args.append(_READ[how].format(v=text))
    lines.append("    return Job(" + ", ".join(args) + ")")
    scope = {"Job": Job, "STATES": STATES, "loads": loads}
    exec("\n".join(lines), scope)  # the text is made above, from constants only
    return scope[name]


_from_hash = _decoder("job", "h", {
    f: f"h[{f!r}]" if f in ("call", "opts") else f"h.get({f!r})"
    for f in {*(f.partition(".")[0] for _, f, _ in JOB_FIELDS)}})
_from_claim = _decoder("claimed", "queue, worker, now, lease, v", {
    **{f: f"v[{i}]" for i, f in enumerate(CLAIM_FIELDS)}, **_CLAIMED})
# what enqueue.lua writes: the new job's own values (the rest is absent until it runs)
_from_new = _decoder("created", "new, created_at, scheduled_at, state", {
    "id": "new.id", "queue": "new.queue", "task": "new.task",
    "call.0": "loads(new.args_json)", "call.1": "loads(new.kwargs_json)", "state": "state",
    "priority": "new.priority", "key": "new.key", "opts.0": "new.max_attempts",
    "max_stalls": "new.max_stalls", "opts.1": "new.timeout",
    "opts.2": "loads(new.backoff_json)", "opts.3": "loads(new.meta_json)",
    "created_at": "created_at", "scheduled_at": "scheduled_at"})


def job(h: dict[str, str]) -> Job:
    """A job hash as a Job."""
    built: Job = _from_hash(h)
    return built


def claim(queue: str, worker: str, now: int, lease: Sequence[Any],
          values: Sequence[str | None]) -> Claim:
    """A job fetch.lua just leased: its CLAIM_FIELDS values plus what the claim decided
    (pinned by tests/redis/test_redis_backend.py::test_a_claimed_job_is_the_job_as_stored)."""
    return Claim(_from_claim(queue, worker, now, lease, values), lease[2])


def new_job_args(new: NewJob) -> list[Any]:
    """The first 9 of the 11 values enqueue.lua takes per job (the caller adds its id index
    shard and its flow group).
    The arguments travel as one JSON value, the options another: fewer hash fields make
    every HSET and HMGET of the job cheaper for Redis."""
    return [
        new.id, new.task, _call(new), _opts(new), new.priority, new.key or "",
        max(new.delay_ms, 0), "" if new.run_at_ms is None else new.run_at_ms, new.max_stalls,
    ]


def once_args(new: NewJob) -> list[Any]:
    """The 6 values enqueue_dedup.lua takes per job after enqueue.lua's first 10: its dedup
    mode (conveyor/dedup.py) and expiry."""
    spec = new.dedup
    expires = "" if new.expires_ms is None else new.expires_ms
    if spec is None:
        return ["", "", 0, "", "0", expires]
    return [spec.key, spec.mode, spec.window_ms,
            "" if spec.max_wait_ms is None else spec.max_wait_ms,
            "1" if spec.replace else "0", expires]


def _call(new: NewJob) -> str:
    return f"[{new.args_json},{new.kwargs_json}]"


def _opts(new: NewJob) -> str:
    timeout = "null" if new.timeout is None else repr(float(new.timeout))
    return f"[{new.max_attempts},{timeout},{new.backoff_json or 'null'},{new.meta_json}]"


def created_job(new: NewJob, created_at: int, scheduled_at: int, state: str) -> Job:
    """The job enqueue.lua just stored, without reading it back (pinned by
    test_redis_backend.py::test_an_enqueued_job_is_the_job_as_stored)."""
    built: Job = _from_new(new, created_at, scheduled_at, state)
    return built


def settlement_args(s: Settlement) -> list[Any]:
    """The six values settle.lua takes per settlement."""
    payload = ""
    summary = "null"
    retry: int | str = ""
    if s.outcome is Outcome.COMPLETED:
        payload = s.result_json if s.result_json is not None else ""
    elif s.outcome in (Outcome.FAILED, Outcome.CANCELLED):
        error = s.error
        if error is not None or s.outcome is Outcome.FAILED:
            entry = {k: v for k, v in (error or {}).items() if k != "at"}
            payload = dumps(entry)
            if entry.get("type") is not None and entry.get("message") is not None:
                summary = dumps(f"{entry['type']}: {entry['message']}")
        if s.outcome is Outcome.FAILED and s.retry_in_ms is not None:
            retry = max(int(s.retry_in_ms), 0)
    elif s.outcome is Outcome.RATE_LIMITED:
        retry = max(int(s.retry_in_ms or 0), 0)
        payload = s.limiter or ""  # the limiter to pause ('' = all of the job's gates)
    return [s.job_id, s.token, s.outcome.value, payload, retry, summary]


def event(queue: str, entry: Sequence[Any]) -> Event:
    """A stream entry [id, [j, job, k, kind, d, data, a, at]] as an Event."""
    eid, values = entry
    return Event(id=int(eid.partition("-")[0]), job_id=values[1], queue=queue,
                 kind=values[3], data=loads(values[5]), at=int(values[7]))


def worker_json(worker: WorkerInfo) -> str:
    return dumps({
        "id": worker.id, "host": worker.host, "pid": worker.pid, "queues": list(worker.queues),
        "concurrency": worker.concurrency, "in_flight": worker.in_flight,
        **({"group": worker.group} if worker.group else {}),  # absent: readers before groups
    })


def order_member(h: dict[str, str]) -> str:
    """A job's member of its queue's jobs set (what list cursors point at)."""
    return f"{int(h['created_at']):013d}{int(h['seq']):012d}:{h['id']}"


def encode_cursor(member: str) -> str:
    return base64.urlsafe_b64encode(f"m:{member}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raw = ""
    kind, _, member = raw.partition(":")
    if kind != "m" or not _MEMBER.match(member):
        raise InvalidRequestError(f"bad cursor {cursor!r}")
    return member
