"""The request and response bodies of the HTTP API (pydantic models, so /openapi.json
describes them), and the functions that turn jobs into them.

Times are ISO 8601 in UTC with milliseconds (``2025-01-31T12:00:00.123Z``). Handlers on
hot paths build the dicts with `job_status` and answer with `json_response` instead of
letting FastAPI validate their own output a second time; the models still document it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
import time
from typing import Annotated, Any, Literal

import orjson
from fastapi import Request
from fastapi.responses import Response
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StrictFloat,
    StrictInt,
    WithJsonSchema,
)

from ..backends.base import QueueInfo, WorkerInfo
from ..errors import ArgumentsError
from ..flow.spec import MAX_CONCURRENCY
from ..jobs import Job, JobState
from ..task import MAX_KEY_LENGTH, MAX_QUEUE_NAME
from ..web.keys import client_keys

# What HTTP accepts, written as the schema says it (schemathesis holds the two together).
# Queue names: ASCII letters, digits, '-', '_' or '.', with at least one letter or digit.
QUEUE_PATTERN = r"^[A-Za-z0-9._-]*[A-Za-z0-9][A-Za-z0-9._-]*$"
_DURATION = r"\d{1,6}(\.\d{1,6})?(ms|s|m|h|d)?"
DURATION_PATTERN = f"^{_DURATION}$"
BACKOFF_PATTERN = f"^(exponential|fixed:{_DURATION}|{_DURATION}(,{_DURATION})*)$"
# Keys: no control characters or line breaks (they show in logs and live streams).
KEY_PATTERN = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]+$"
MAX_DELAY_SECONDS = 1e11
# RFC 3339 date-time, offset required (what JSON Schema's "date-time" format means)
DATE_TIME_PATTERN = (r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?"
                     r"([Zz]|[+-]\d{2}:\d{2})$")
# List cursors: opaque base64url tokens (no padding) made by the server
CURSOR_PATTERN = r"^[A-Za-z0-9_-]{1,200}$"
# Rates as flow/spec.py reads them (it also bounds the count and the window), or "off"
RATE_PATTERN = r"^(off|\s*\d{1,7}\s*/\s*\d{0,6}(\.\d{1,6})?\s*(ms|s|m|h|d)\s*)$"
_DATE_TIME = re.compile(DATE_TIME_PATTERN)


def _date_time_text(value: Any) -> Any:
    """run_at is text in RFC 3339 form, as the schema says: never a number of seconds."""
    if not isinstance(value, str) or not _DATE_TIME.match(value):
        raise ValueError("must be an RFC 3339 date-time with a time zone offset, "
                         "e.g. '2030-01-31T12:00:00Z'")
    return value  # above every duration the pattern allows; before the year 9999


# -- requests ------------------------------------------------------------------------------
Duration = Annotated[float, Strict(), Field(ge=0, le=MAX_DELAY_SECONDS)] | Annotated[
    str, Field(pattern=DURATION_PATTERN)]


class DedupOptions(BaseModel):
    """A dedup mode (see the README's "Dedup modes and expiry"); the combination is
    checked as in Python (conveyor.Dedup), a bad one is a 422."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=MAX_KEY_LENGTH, pattern=KEY_PATTERN,
                     description="The dedup key; '{name}' takes the call's argument name.")
    until: Literal["started", "finished"] | None = Field(
        default=None, description="Fold into the key's job until it started / finished "
                                  "(default 'finished').")
    ttl: Duration | None = Field(default=None, description="Throttle: fold for this long "
                                                           "after the first enqueue.")
    debounce: Duration | None = Field(default=None, description="Run this long after the "
                                                                "last enqueue of a burst.")
    max_wait: Duration | None = Field(default=None, description="Debounce: at most this "
                                                                "long after the first.")
    replace: StrictBool = Field(default=False, description="A fold gives the pending job "
                                                           "the newest arguments.")
    keep_last: StrictBool = Field(default=False, description="While the key's job runs, "
                                                             "keep one pending copy.")


class EnqueueOptions(BaseModel):
    """Per-job options; anything left out takes the task's default."""

    model_config = ConfigDict(extra="forbid")

    queue: str | None = Field(default=None, min_length=1, max_length=MAX_QUEUE_NAME,
                              pattern=QUEUE_PATTERN,
                              description="Queue name: letters, digits, '-', '_' or '.'.")
    priority: StrictInt | None = Field(default=None, ge=-1_000_000, le=1_000_000,
                                 description="Higher runs first.")
    delay: Annotated[float, Strict(), Field(ge=0, le=MAX_DELAY_SECONDS)] | Annotated[
        str, Field(pattern=DURATION_PATTERN)] | None = Field(
        default=None, description="Run no sooner than this: seconds, or '500ms', '30s', "
                                  "'2m', '1h', '1d'.", examples=[30, "2m"])
    run_at: Annotated[AwareDatetime, BeforeValidator(_date_time_text), WithJsonSchema(
        {"type": "string", "format": "date-time", "pattern": DATE_TIME_PATTERN})] | None = Field(
        default=None,
        description="Run no sooner than this time: an RFC 3339 date-time with a time zone "
                    "offset, e.g. '2030-01-31T12:00:00Z' (not a number).")
    key: str | None = Field(
        default=None, min_length=1, max_length=MAX_KEY_LENGTH, pattern=KEY_PATTERN,
        description="Deduplication key: while a job with this key is kept, enqueueing "
                    "again returns it instead of a new job (whatever the arguments). For "
                    "retry-safe requests prefer the Idempotency-Key header.")
    dedup: DedupOptions | None = Field(default=None, description="Fold this enqueue into "
                                       "an existing job (a dedup mode).")
    expires: Duration | None = Field(default=None, description="Not started this long "
                                     "after the enqueue: cancelled, reason 'expired'.")
    attempts: StrictInt | None = Field(default=None, ge=1, le=1000,
                                 description="Attempts before the job fails.")
    timeout: StrictFloat | None = Field(default=None, gt=0, le=MAX_DELAY_SECONDS,
                                  description="Per-attempt timeout in seconds.")
    backoff: str | None = Field(default=None, max_length=200, pattern=BACKOFF_PATTERN,
                                description="'exponential', 'fixed:30s' or '30s,2m,10m'.")
    meta: dict[str, Any] | None = Field(default=None,
                                        description="Free-form JSON kept with the job.")
    webhook: str | None = Field(
        default=None, max_length=2048, pattern=r"^https?://",
        description="A URL that gets a signed POST (Standard Webhooks) when the job "
                    "completes or fails; public addresses only unless configured.")


class EnqueueRequest(BaseModel):
    """One call of the task: positional and keyword arguments, plus options."""

    model_config = ConfigDict(extra="forbid")

    args: list[Any] = Field(default_factory=list, description="Positional arguments.")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments.")
    options: EnqueueOptions = Field(default_factory=EnqueueOptions)

    def fingerprint(self, task: str) -> str:
        """What an Idempotency-Key replay must match: the task and the body, canonical
        (key order and whitespace do not matter, absent and default values are equal)."""
        try:
            canonical = orjson.dumps([task, self.model_dump(mode="json")],
                                     option=orjson.OPT_SORT_KEYS)
        except TypeError as exc:  # e.g. an integer beyond 64 bits: never storable either
            raise ArgumentsError(f"{task} arguments must be JSON-serializable: {exc}") from None
        return hashlib.sha256(canonical).hexdigest()


# -- responses -----------------------------------------------------------------------------
class JobAccepted(BaseModel):
    id: str
    task: str
    queue: str
    state: JobState
    created: bool = Field(description="False when an existing job (same key or "
                                      "Idempotency-Key) was returned instead of a new one.")
    folded_into: str | None = Field(description="The existing job's id when this enqueue "
                                                "was folded into it (created is false).")
    created_at: dt.datetime
    scheduled_at: dt.datetime
    status_url: str
    events_url: str
    result_url: str


class WaitingReason(BaseModel):
    """One reason a waiting or delayed job is not running (conveyor/flow/why.py)."""

    reason: str = Field(
        description="delayed | queue_paused | rate_limited | paused (a task raised "
                    "RateLimited) | concurrency_full | no_worker (no live worker consumes "
                    "the queue) | waiting_children (a flow's job: '2 of 5 dependencies "
                    "left'); later versions may add kinds.")
    detail: str = Field(description="The reason as a sentence.")
    queue: str | None = None
    limiter: str | None = Field(default=None, description="The limiter that holds it back.")
    key: str | None = Field(default=None, description="Its key ('' = the shared budget).")
    until: dt.datetime | None = Field(default=None,
                                      description="When it may start, as far as this says.")
    rate: str | None = Field(default=None, description="The rate in force, e.g. '10/s'.")
    used: int | None = Field(default=None, description="Concurrency slots in use.")
    limit: int | None = Field(default=None, description="The concurrency cap.")


class JobStatus(BaseModel):
    """A job as a client following it sees it (AIP-151 style: `done`, then `result` or
    `error`)."""

    id: str
    task: str
    queue: str
    state: JobState
    done: bool = Field(description="True once the job is completed, failed or cancelled.")
    progress: Any = Field(default=None, description="The last progress the task reported.")
    attempt: int = Field(description="Attempts started so far (the running one's number).")
    max_attempts: int
    priority: int
    key: str | None = Field(description="The job's deduplication key (options.key), if any.")
    idempotency_key: str | None = Field(
        default=None, description="The Idempotency-Key header the job was enqueued with.")
    cancel_requested: bool
    created_at: dt.datetime
    scheduled_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    result: Any = Field(default=None, description="The task's return value, once completed.")
    error: dict[str, Any] | None = Field(
        default=None, description="The last error entry (type, message, traceback, "
                                  "attempt), unless the job completed.")
    status_url: str
    events_url: str
    result_url: str
    waiting_reasons: list[WaitingReason] | None = Field(
        default=None, description="GET /v1/jobs/{id} only: why a waiting or delayed job is "
                                  "not running now (empty: nothing holds it back, or it is "
                                  "not waiting).")


class JobResult(BaseModel):
    id: str
    state: JobState
    result: Any


class JobPage(BaseModel):
    items: list[JobStatus]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page.")
    next: str | None = Field(description="The URL of the next page (also a Link header).")


class QueueStatus(BaseModel):
    name: str
    paused: bool
    counts: dict[JobState, int] = Field(description="Jobs per state.")
    oldest_waiting_at: dt.datetime | None
    oldest_waiting_age_seconds: float | None = Field(
        description="How long the oldest waiting job has waited (the latency to alert on).")


class WorkerStatus(BaseModel):
    id: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    in_flight: int
    started_at: dt.datetime | None
    last_seen_at: dt.datetime | None
    group: str | None = Field(None, description="The supervisor shared by the worker "
                              "processes of one `conveyor worker -p N` (null: a lone worker).")


class LimitSpec(BaseModel):
    rate: str | None = Field(description="Starts per window, e.g. '10/s' (None: no rate).")
    concurrency: int | None = Field(description="Jobs active at once (None: no cap).")


class LimitKey(BaseModel):
    key: str = Field(description="The key ('' = the limiter's shared budget).")
    active: int = Field(description="Jobs running through it (concurrency slots taken).")
    starts: int = Field(description="Starts in the current window of the rate.")
    paused_until: dt.datetime | None = Field(description="Paused by RateLimited until then.")
    blocked: int = Field(description="Waiting jobs the claim last found held back.")


class LimitStatus(BaseModel):
    """A limiter stored in a queue, its limits in force and what it is doing now."""

    queue: str
    name: str = Field(description="'queue', 'task:<task>' or a shared limiter's name.")
    scope: Literal["queue", "task", "limiter"]
    rate: str | None = Field(description="The rate in force (override, else declared).")
    concurrency: int | None = Field(description="The cap in force.")
    declared: LimitSpec | None = Field(description="As the code declares it.")
    override: LimitSpec | None = Field(description="Changed at runtime; wins over declared.")
    active: int
    blocked: int
    keys: list[LimitKey] = Field(description="Keys with use or blocked jobs, most blocked "
                                             "first.")


class LimitChange(BaseModel):
    """The parts of a limiter to change; the parts left out stay as they are in force."""

    model_config = ConfigDict(extra="forbid")

    rate_limit: str | None = Field(
        default=None, max_length=60, pattern=RATE_PATTERN,
        description="'10/s', '500/m', '5/10s' (count / window; ms, s, m, h or d), or 'off'.")
    concurrency: Annotated[StrictInt, Field(ge=1, le=MAX_CONCURRENCY)] | Literal["off"] | None = \
        Field(default=None, description="Jobs active at once, or 'off'.")


class TaskInfo(BaseModel):
    name: str
    queue: str
    description: str | None
    enqueue_url: str


# -- building them -------------------------------------------------------------------------
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    try:
        when = _EPOCH + dt.timedelta(milliseconds=ms)
    except OverflowError:  # beyond what ISO 8601 years can say
        when = dt.datetime.max.replace(tzinfo=dt.UTC) if ms > 0 else _EPOCH.replace(year=1)
    return when.isoformat(timespec="milliseconds")[:-6] + "Z"  # "+00:00" -> "Z"


def prefix(request: Request) -> str:
    """Where this app is mounted (empty when served at the root)."""
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")


def links(base: str, job_id: str) -> dict[str, str]:
    status = f"{base}/v1/jobs/{job_id}"
    return {"status_url": status, "events_url": status + "/events",
            "result_url": status + "/result"}


def job_status(job: Job, base: str) -> dict[str, Any]:
    return {
        "id": job.id, "task": job.task, "queue": job.queue, "state": job.state.value,
        "done": job.is_final, "progress": job.progress, "attempt": job.attempt,
        "max_attempts": job.max_attempts, "priority": job.priority,
        **dict(zip(("key", "idempotency_key"), client_keys(job), strict=True)),
        "cancel_requested": job.cancel_requested, "created_at": iso(job.created_at),
        "scheduled_at": iso(job.scheduled_at), "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "result": job.result if job.state is JobState.COMPLETED else None,
        "error": None if job.state is JobState.COMPLETED else job.last_error,
        **links(base, job.id),
    }


def accepted(job: Job, created: bool, base: str) -> dict[str, Any]:
    return {"id": job.id, "task": job.task, "queue": job.queue, "state": job.state.value,
            "created": created, "folded_into": None if created else job.id,
            "created_at": iso(job.created_at),
            "scheduled_at": iso(job.scheduled_at), **links(base, job.id)}


def retry_after(job: Job) -> str | None:
    """A polling hint while the job is not final: when a delayed job is due, else 1 s.

    Only a hint, so the local clock is good enough (no extra backend round trip)."""
    if job.is_final:
        return None
    if job.state is JobState.DELAYED:
        wait = (job.scheduled_at - time.time() * 1000) / 1000
        return str(min(max(math.ceil(wait), 1), 3600))
    return "1"


def queue_status(info: QueueInfo, now_ms: int) -> dict[str, Any]:
    oldest = info.oldest_waiting_at
    return {"name": info.name, "paused": info.paused,
            "counts": {state.value: info.counts.get(state, 0) for state in JobState},
            "oldest_waiting_at": iso(oldest),
            "oldest_waiting_age_seconds": None if oldest is None
            else max(now_ms - oldest, 0) / 1000}


def worker_status(info: WorkerInfo) -> dict[str, Any]:
    return {"id": info.id, "host": info.host, "pid": info.pid, "queues": list(info.queues),
            "concurrency": info.concurrency, "in_flight": info.in_flight,
            "started_at": iso(info.started_at), "last_seen_at": iso(info.last_seen_at),
            "group": info.group}


def json_response(body: Any, status: int = 200,
                  headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, headers=headers,
                    media_type="application/json")
