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


def _int(value: str | None) -> int | None:
    return None if value is None else int(value)


def job(h: dict[str, str]) -> Job:
    """A job hash as a Job (counters a new job does not store yet read as 0)."""
    get = h.get
    args, kwargs = loads(h["call"])
    max_attempts, timeout, backoff, meta = loads(h["opts"])
    return Job(
        id=h["id"], queue=h["queue"], task=h["task"], args=args, kwargs=kwargs,
        state=STATES[h["state"]], priority=int(h["priority"]), key=get("key"),
        attempt=int(get("attempt", 0)), max_attempts=max_attempts,
        stalls=int(get("stalls", 0)), max_stalls=int(h["max_stalls"]),
        timeout=None if timeout is None else float(timeout), backoff=backoff, meta=meta,
        progress=loads(get("progress")), result=loads(get("result")),
        errors=loads(get("errors", "[]")), logs=loads(get("logs", "[]")),
        created_at=int(h["created_at"]), scheduled_at=int(h["scheduled_at"]),
        started_at=_int(get("started_at")), finished_at=_int(get("finished_at")),
        worker=get("worker"), cancel_requested=get("cancel_requested") == "1",
    )


# The order of CLAIM_FIELDS in lua/includes/queue.lua.
CLAIM_FIELDS = ("state", "attempt", "task", "call", "opts", "priority", "key", "max_stalls",
                "stalls", "progress", "errors", "logs", "created_at", "scheduled_at")


def claim(queue: str, worker: str, now: int, lease: Sequence[Any],
          values: Sequence[str | None]) -> Claim:
    """A job fetch.lua just leased: its CLAIM_FIELDS values plus what the claim decided."""
    (_, _, task, call, opts, priority, key, max_stalls, stalls, progress, errors, logs,
     created_at, scheduled_at) = values
    job_id, attempt, token = lease
    assert task is not None and call is not None and opts is not None
    args, kwargs = loads(call)
    max_attempts, timeout, backoff, meta = loads(opts)
    # Positional, in Job's field order: keyword arguments make this call twice as dear,
    # and it runs once per job on the worker's hot path (pinned by
    # tests/redis/test_redis_backend.py::test_a_claimed_job_is_the_job_as_stored)
    return Claim(Job(
        job_id, queue, task, args, kwargs, JobState.ACTIVE, int(priority or 0), key,
        int(attempt), max_attempts, int(stalls or 0), int(max_stalls or 0),
        None if timeout is None else float(timeout), backoff, meta,
        None if progress is None else loads(progress), None,
        [] if errors is None else loads(errors), [] if logs is None else loads(logs),
        int(created_at or 0), int(scheduled_at or 0), now, None, worker, False,
    ), token)


def new_job_args(new: NewJob) -> list[Any]:
    """The first 9 of the 10 values enqueue.lua takes per job (the caller adds the last).
    The arguments travel as one JSON value, the options another: fewer hash fields make
    every HSET and HMGET of the job cheaper for Redis."""
    timeout = "null" if new.timeout is None else repr(float(new.timeout))
    return [
        new.id, new.task, f"[{new.args_json},{new.kwargs_json}]",
        f"[{new.max_attempts},{timeout},{new.backoff_json or 'null'},{new.meta_json}]",
        new.priority, new.key or "", max(new.delay_ms, 0),
        "" if new.run_at_ms is None else new.run_at_ms, new.max_stalls,
    ]


def created_job(new: NewJob, created_at: int, scheduled_at: int, state: str) -> Job:
    """The job enqueue.lua just stored, without reading it back (positional, as in
    `claim`; pinned by test_redis_backend.py::test_an_enqueued_job_is_the_job_as_stored)."""
    return Job(
        new.id, new.queue, new.task, loads(new.args_json), loads(new.kwargs_json),
        STATES[state], new.priority, new.key, 0, new.max_attempts, 0, new.max_stalls,
        None if new.timeout is None else float(new.timeout), loads(new.backoff_json),
        loads(new.meta_json), None, None, [], [], created_at, scheduled_at, None, None, None,
        False,
    )


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
