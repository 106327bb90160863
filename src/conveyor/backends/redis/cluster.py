"""Enqueueing on Redis Cluster, where a job's id index and the queue registry live in
other slots than its queue, so no single script can see all three (see keyspace.py).

The ids are indexed first (HSETNX also tells an id that exists already), then one script
call per queue stores its jobs; an index entry that ends up unused is removed again. An
id indexed to another queue is that queue's job, unless the entry outlived its job (then
the id is taken over).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ..base import Enqueued, NewJob
from . import codec
from .connection import Connection
from .scripts import Batch, OutcomeUnknown


def by_queue(jobs: Sequence[NewJob], positions: Iterable[int]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for i in positions:
        groups.setdefault(jobs[i].queue, []).append(i)
    return groups


def enqueued(new: NewJob, reply: list[Any]) -> Enqueued:
    """enqueue.lua's answer for one job: stored now, or the job that holds its key."""
    if reply[0] == 1:
        return Enqueued(codec.created_job(new, reply[1], reply[2], reply[3]), True)
    return Enqueued(codec.job(codec.fields(reply[1])), False)


async def job_elsewhere(conn: Connection, new: NewJob) -> Enqueued | None:
    """The job of another queue that holds `new`'s id, or None (the id is free for it now:
    an index entry that outlived its job is taken over)."""
    owner = (await conn.locate([new.id])).get(new.id)
    if owner is None or owner == new.queue:
        return None
    batch = Batch()
    batch.command("HGETALL", conn.keys.queue(owner).keys[0] + new.id)
    h = (await conn.run(batch))[0]
    if h:
        return Enqueued(codec.job(h), False)
    batch = Batch()
    batch.command("HSET", conn.keys.index(new.id), new.id, new.queue)
    await conn.run(batch)
    return None


async def enqueue(conn: Connection, jobs: Sequence[NewJob]) -> list[Enqueued]:
    out: list[Enqueued | None] = [None] * len(jobs)
    first = Batch()
    first.command("SADD", conn.keys.queues, *{j.queue for j in jobs})
    for new in jobs:
        first.command("HSETNX", conn.keys.index(new.id), new.id, new.queue)
    fresh = [bool(r) for r in (await conn.run(first))[1:]]
    for i in (i for i, f in enumerate(fresh) if not f):
        out[i] = await job_elsewhere(conn, jobs[i])
    groups = by_queue(jobs, [i for i in range(len(jobs)) if out[i] is None])
    batch = Batch()
    for queue, positions in groups.items():
        args: list[Any] = [queue, 0]
        special = any(jobs[i].special for i in positions)
        for i in positions:
            args += codec.new_job_args(jobs[i])
            args.append("")
            if special:
                args += codec.once_args(jobs[i])
            args.append(jobs[i].flow or "")  # the flow group: always the last value
        conn.queue_script(batch, "enqueue_dedup" if special else "enqueue", queue, *args)
    try:
        results = await conn.run(batch)
    except OutcomeUnknown:
        raise  # the jobs may be stored: their index entries must stay
    except BaseException:
        await _forget_ids(conn, jobs, [i for i, f in enumerate(fresh) if f])
        raise
    unused: list[int] = []
    for positions, stored in zip(groups.values(), results, strict=True):
        for i, reply in zip(positions, stored, strict=True):
            done = out[i] = enqueued(jobs[i], reply)
            if reply[0] == 0 and fresh[i] and done.job.id != jobs[i].id:
                unused.append(i)
    if unused:
        await _forget_ids(conn, jobs, unused)
    return [e for e in out if e is not None]


async def _forget_ids(conn: Connection, jobs: Sequence[NewJob], positions: list[int]) -> None:
    batch = Batch()
    for i in positions:
        conn.unindex(batch, jobs[i].queue, [jobs[i].id])
    await conn.run(batch)
