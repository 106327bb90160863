"""Operator calls that span queues: listings, the event stream, workers, bulk actions.

Each visits every queue (or the one the filter names) with one pipelined script call per
queue per step; the scripts bound their own work, and these functions merge the answers.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ...jobs import Event, JobState
from ...serialization import loads
from ..base import JobFilter, Page, WorkerInfo
from . import codec
from .scripts import Batch

if TYPE_CHECKING:
    from .backend import RedisBackend

STATE_ORDER = (JobState.WAITING, JobState.DELAYED, JobState.ACTIVE, JobState.COMPLETED,
               JobState.FAILED, JobState.CANCELLED)
LIST_BUDGET = 2000  # jobs looked at per queue per script call
EVENT_BUDGET = 5000  # stream entries looked at per script call (one job's events)
ACT_BUDGET = 1000  # jobs looked at per queue and state per bulk-action call
MAX_EVENT_ID = 2**63 - 1  # stream ids are 64-bit
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_lower(text: str) -> str:
    """Lower-case ASCII letters only, as Lua's string.lower and SQL LIKE do."""
    return text.translate(_ASCII_LOWER)


def _filter_args(where: JobFilter) -> list[str]:
    search = where.search or ""
    return [",".join(s.value for s in where.states), where.task or "", search]


def _matches(h: dict[str, str], where: JobFilter) -> bool:
    """The list_jobs.lua filter, for jobs picked by id."""
    if where.queue is not None and h["queue"] != where.queue:
        return False
    if where.states and h["state"] not in {s.value for s in where.states}:
        return False
    if where.task is not None and h["task"] != where.task:
        return False
    if where.search and h["id"] != where.search:
        needle = ascii_lower(where.search)
        texts = (h.get("id"), h.get("task"), h.get("call"), h.get("errors"))
        return any(t is not None and needle in ascii_lower(t) for t in texts)
    return True


async def list_jobs(b: RedisBackend, where: JobFilter, limit: int, below: str) -> Page:
    found: list[tuple[str, dict[str, str]]] = []
    if where.ids:
        located = await b.locate(where.ids)
        batch = Batch()
        for job_id, queue in located.items():
            batch.command("HGETALL", b.keys.queue(queue).keys[0] + job_id)
        for h in await b.send(batch):
            if h and _matches(h, where):
                member = codec.order_member(h)
                if not below or member < below:
                    found.append((member, h))
    else:
        queues = [where.queue] if where.queue is not None else await b.queue_names()
        found = await _scan_lists(b, queues, where, limit + 1, below)
    found.sort(key=lambda pair: pair[0], reverse=True)
    more = len(found) > limit
    page = found[:limit]
    cursor = codec.encode_cursor(page[-1][0]) if more else None
    return Page([codec.job(h) for _, h in page], cursor)


async def _scan_lists(b: RedisBackend, queues: Sequence[str], where: JobFilter, want: int,
                      below: str) -> list[tuple[str, dict[str, str]]]:
    """Up to `want` matching jobs per queue below the cursor, each queue newest first."""
    search = where.search or ""
    args = [*_filter_args(where), ascii_lower(search)]
    positions = dict.fromkeys(queues, below)
    found: dict[str, list[tuple[str, dict[str, str]]]] = {q: [] for q in queues}
    while positions:
        batch = Batch()
        for queue, pos in positions.items():
            b.queue_call(batch, "list_jobs", queue, pos, want - len(found[queue]), LIST_BUDGET,
                         *args)
        results = await b.send(batch)
        for queue, (matches, pos, done) in zip(list(positions), results, strict=True):
            found[queue] += [(m, codec.fields(flat)) for m, flat in matches]
            if done or len(found[queue]) >= want:
                del positions[queue]
            else:
                positions[queue] = pos
    merged = heapq.merge(*found.values(), key=lambda pair: pair[0], reverse=True)
    return list(merged)[:want]


async def workers(b: RedisBackend) -> list[WorkerInfo]:
    infos, started, seen = b.keys.workers
    batch = Batch()
    batch.command("HGETALL", infos)
    batch.command("HGETALL", started)
    batch.command("ZRANGE", seen, 0, -1, "WITHSCORES")
    registered, first, flat = await b.send(batch)
    last = {flat[i]: int(float(flat[i + 1])) for i in range(0, len(flat), 2)}
    out = []
    for worker_id, info in registered.items():
        data = loads(info)
        data["queues"] = tuple(data["queues"])
        started_at = first.get(worker_id)
        out.append(WorkerInfo(**data, started_at=None if started_at is None else int(started_at),
                              last_seen_at=last.get(worker_id)))
    out.sort(key=lambda w: (w.started_at or 0, w.id))
    return out


async def job_events(b: RedisBackend, job_id: str, after: int, limit: int) -> list[Event]:
    queue = (await b.locate([job_id])).get(job_id)
    if queue is None:
        return []
    out: list[Event] = []
    pos = min(after, MAX_EVENT_ID)
    while len(out) < limit:
        batch = Batch()
        b.queue_call(batch, "job_events", queue, job_id, pos, limit - len(out), EVENT_BUDGET)
        entries, last, done = (await b.send(batch))[0]
        out += [codec.event(queue, e) for e in entries]
        if done:
            break
        pos = int(last)
    return out


async def events(b: RedisBackend, after: int, limit: int) -> list[Event]:
    """Every queue's events after `after`, merged below the watermark (see keyspace.py)."""
    after = min(after, MAX_EVENT_ID)
    for _ in range(3):
        merged, held_back = await _events_once(b, after, limit)
        if not held_back or len(merged) >= limit:
            break
        # events of a queue born in this very millisecond: readable once it has passed
        await asyncio.sleep(0.001)
    return merged


async def _events_once(b: RedisBackend, after: int, limit: int) -> tuple[list[Event], bool]:
    first = Batch()
    first.command("TIME")
    first.command("SMEMBERS", b.keys.queues)
    (seconds, micros), names = await b.send(first)
    # no queue unknown to this read can write an id below its first millisecond + 1
    unborn = (int(seconds) * 1000 + int(micros) // 1000 + 1) * 1000
    if not names:
        return [], False
    names = sorted(names)
    batch = Batch()
    for queue in names:
        b.queue_call(batch, "read_events", queue, after, limit)
    merged: list[Event] = []
    watermark = unborn
    for queue, (entries, floor) in zip(names, await b.send(batch), strict=True):
        watermark = min(watermark, int(floor))
        merged += [codec.event(queue, e) for e in entries]
    held_back = any(e.id >= watermark for e in merged) and watermark == unborn
    merged = sorted((e for e in merged if e.id < watermark), key=lambda e: (e.id, e.queue))
    if len(merged) > limit:
        cut = limit
        # never split events sharing an id (two queues, same millisecond) across pages
        while cut > 0 and merged[cut - 1].id == merged[cut].id:
            cut -= 1
        if cut == 0:
            cut = limit
            while cut < len(merged) and merged[cut].id == merged[limit - 1].id:
                cut += 1
        merged = merged[:cut]
    return merged, held_back


async def act(b: RedisBackend, name: str, allowed: Sequence[JobState],
              where: JobFilter) -> list[str]:
    """Run a bulk action script on every job the filter selects."""
    states = [s for s in allowed if not where.states or s in where.states]
    if not states:
        return []
    head = _filter_args(where)
    lower = ascii_lower(where.search or "")
    changed: list[str] = []
    if where.ids:
        groups: dict[str, list[str]] = {}
        for job_id, queue in (await b.locate(where.ids)).items():
            if where.queue is None or queue == where.queue:
                groups.setdefault(queue, []).append(job_id)
        batch = Batch()
        for queue, ids in groups.items():
            b.queue_call(batch, name, queue, "ids", *head, "", 0, 0, lower, *ids)
        for ids_changed, _, _ in await b.send(batch):
            changed += ids_changed
        return changed
    queues = [where.queue] if where.queue is not None else await b.queue_names()
    cursors: dict[tuple[str, str], int] = {(q, s.value): 0 for q in queues for s in states}
    while cursors:
        batch = Batch()
        for (queue, state), skip in cursors.items():
            b.queue_call(batch, name, queue, "scan", *head, state, skip, ACT_BUDGET, lower)
        results: list[Any] = await b.send(batch)
        for key, (ids_changed, skip, exhausted) in zip(list(cursors), results, strict=True):
            changed += ids_changed
            if exhausted:
                del cursors[key]
            else:
                cursors[key] = skip
    return changed
