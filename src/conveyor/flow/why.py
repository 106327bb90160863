"""Why is this job waiting? One answer per reason that holds it back, for the CLI, the
HTTP API and the dashboard.

Reasons (``reason`` key): ``delayed`` (until), ``queue_paused``, ``rate_limited``
(limiter, key, until, rate), ``paused`` (limiter, key, until: a task raised RateLimited),
``concurrency_full`` (limiter, key, used, limit), ``no_worker`` (no live worker consumes
its queue), ``after_running_copy`` (a Dedup keep_last copy: starts once the running job
with its key ended). An empty answer for a waiting job means nothing holds it: the next
claim with a free slot takes it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..backends.base import Backend
from ..dedup import PARKED_AT
from ..jobs import Job, JobState

WORKER_SEEN_MS = 60_000  # a worker heard from within this long counts as live


async def why_waiting(backend: Backend, job: Job) -> list[dict[str, Any]]:
    if job.state is JobState.DELAYED:
        if job.scheduled_at == PARKED_AT:
            return [{"reason": "after_running_copy"}]  # Dedup(keep_last=True)
        return [{"reason": "delayed", "until": job.scheduled_at}]
    if job.state is not JobState.WAITING:
        return []
    reasons: list[dict[str, Any]] = []
    if job.queue in await backend.paused_queues():
        reasons.append({"reason": "queue_paused", "queue": job.queue})
    reasons += await backend.flow_blockers(job.id)
    now = await backend.now()
    if not any(job.queue in w.queues and (w.last_seen_at or 0) > now - WORKER_SEEN_MS
               for w in await backend.workers()):
        reasons.append({"reason": "no_worker", "queue": job.queue})
    return reasons


def _at(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%H:%M:%S.%f")[:-3] + "Z"


def _iso(ms: int) -> str:
    when = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def as_json(r: dict[str, Any]) -> dict[str, Any]:
    """One reason for JSON answers (HTTP, ``--json``): its fields, `until` as an ISO 8601
    UTC time, and `detail`, the sentence `describe` makes of it."""
    out = {**r, "detail": describe(r)}
    if isinstance(r.get("until"), int):
        out["until"] = _iso(r["until"])
    return out


def _limiter(r: dict[str, Any]) -> str:
    return str(r["limiter"]) + (f" key {r['key']!r}" if r.get("key") else "")


def describe(r: dict[str, Any]) -> str:
    """One reason as a person reads it."""
    kind = r["reason"]
    if kind == "delayed":
        return f"delayed until {_at(r['until'])}"
    if kind == "queue_paused":
        return f"queue {r['queue']!r} is paused"
    if kind == "rate_limited":
        return f"rate limited ({_limiter(r)}, {r['rate']}) until {_at(r['until'])}"
    if kind == "paused":
        return f"paused by RateLimited ({_limiter(r)}) until {_at(r['until'])}"
    if kind == "concurrency_full":
        return f"concurrency full ({_limiter(r)}, {r['used']}/{r['limit']})"
    if kind == "after_running_copy":
        return "waits for the running job with its dedup key to end (keep_last)"
    if kind == "no_worker":
        return f"no worker consumes queue {r['queue']!r}"
    return str(kind)
