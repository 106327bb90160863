"""Flows on Redis (conveyor/flows): storing a flow, reading it back, cancelling it.

A flow lives in one queue, so one script stores it and every release, failure and
revival runs in the script of the step that decides it (lua/includes/dependents.lua).
On Cluster a script reaches one slot, and a queue is one slot: a flow across queues is
refused with InvalidFlowError rather than stored in parts. The job ids (and the flow's
id, as "flow:<id>") are indexed before the script runs, as cluster.py does for enqueue.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ...errors import InvalidFlowError
from ...jobs import Job
from ...serialization import dumps
from ..base import Lease, NewJob
from ..dependencies import check_children, check_flow, children
from . import codec
from .keyspace import queue_of_token
from .scripts import Batch

if TYPE_CHECKING:
    from .connection import Connection


def _flow_key(flow_id: str) -> str:
    return f"flow:{flow_id}"


async def enqueue_flow(conn: Connection, jobs: Sequence[NewJob]) -> list[Job]:
    check_flow(jobs)
    queue = jobs[0].queue
    if any(new.queue != queue for new in jobs):
        raise InvalidFlowError("on Redis a flow's jobs must share one queue (one Cluster "
                               f"slot); this flow uses {sorted({j.queue for j in jobs})}")
    conn.keys.queue(queue)  # refuse a bad queue name before writing anything
    names = [new.id for new in jobs] + [_flow_key(jobs[0].flow_id or "")]
    await _index(conn, queue, names)
    kids = children(jobs)
    args: list[Any] = [queue, jobs[0].flow_id]
    for new in jobs:
        args += codec.new_job_args(new)[:5]
        args += [max(new.delay_ms, 0), "" if new.run_at_ms is None else new.run_at_ms,
                 new.max_stalls, dumps(dict(new.parents)) if new.parents else "",
                 dumps(kids[new.id]) if new.id in kids else ""]
    batch = Batch()
    conn.queue_script(batch, "flow_enqueue", queue, *args)
    try:
        reply = (await conn.run(batch))[0]
    except BaseException:
        await _unindex(conn, queue, names)
        raise
    if reply[0] == 0:
        await _unindex(conn, queue, names)
        raise InvalidFlowError(f"job id {reply[1]} of the flow is taken already")
    now, dues = reply[1], reply[2]
    out = []
    for new, due in zip(jobs, dues, strict=True):
        state = ("waiting-children" if new.parents
                 else "delayed" if due > now else "waiting")
        job = codec.created_job(new, now, due, state)
        out.append(dataclasses.replace(job, flow_id=new.flow_id, parents=dict(new.parents),
                                       waits=len(new.parents)))
    return out


async def spawn(conn: Connection, lease: Lease, jobs: Sequence[NewJob]) -> list[Job]:
    check_children(jobs)
    queue = queue_of_token(lease.token)
    if queue is None or any(new.queue != queue for new in jobs):
        raise InvalidFlowError("on Redis a spawned job goes to its parent's queue "
                               f"({queue}: one Cluster slot)")
    names = [new.id for new in jobs]
    await _index(conn, queue, names)
    args: list[Any] = [queue, lease.job_id, lease.token]
    for new in jobs:
        args += codec.new_job_args(new)[:5]
        args += [max(new.delay_ms, 0), "" if new.run_at_ms is None else new.run_at_ms,
                 new.max_stalls]
    batch = Batch()
    conn.queue_script(batch, "spawn", queue, *args)
    try:
        reply = (await conn.run(batch))[0]
    except BaseException:
        await _unindex(conn, queue, names)
        raise
    if reply[0] != 1:
        await _unindex(conn, queue, names)
        raise InvalidFlowError(f"job {lease.job_id} cannot spawn: its lease is lost"
                               if reply[0] == 0 else f"job id {reply[1]} is taken already")
    now, flow_id, dues = reply[1], reply[2], reply[3]
    batch = Batch()  # a flow that starts here: flow_jobs finds its queue (kept if known)
    batch.command("HSETNX", conn.keys.index(_flow_key(flow_id)), _flow_key(flow_id), queue)
    await conn.run(batch)
    return [dataclasses.replace(
        codec.created_job(new, now, due, "delayed" if due > now else "waiting"),
        flow_id=flow_id) for new, due in zip(jobs, dues, strict=True)]


async def _index(conn: Connection, queue: str, names: list[str]) -> None:
    """Index every id to `queue`, or none (an id held by any job refuses the flow)."""
    batch = Batch()
    batch.command("SADD", conn.keys.queues, queue)
    for name in names:
        batch.command("HSETNX", conn.keys.index(name), name, queue)
    fresh = (await conn.run(batch))[1:]
    taken = [name for name, f in zip(names, fresh, strict=True) if not f]
    if taken:
        await _unindex(conn, queue, [n for n, f in zip(names, fresh, strict=True) if f])
        raise InvalidFlowError(f"job id {taken[0]} of the flow is taken already")


async def _unindex(conn: Connection, queue: str, names: list[str]) -> None:
    batch = Batch()
    conn.unindex(batch, queue, names)
    await conn.run(batch)


async def _queue_of(conn: Connection, flow_id: str) -> str | None:
    return (await conn.locate([_flow_key(flow_id)])).get(_flow_key(flow_id))


async def flow_jobs(conn: Connection, flow_id: str) -> list[Job]:
    queue = await _queue_of(conn, flow_id)
    if queue is None:
        return []
    batch = Batch()
    conn.queue_script(batch, "flow_jobs", queue, flow_id)
    return [codec.job(codec.fields(flat)) for flat in (await conn.run(batch))[0]]


async def cancel_flow(conn: Connection, flow_id: str) -> list[str]:
    queue = await _queue_of(conn, flow_id)
    if queue is None:
        return []
    batch = Batch()
    conn.queue_script(batch, "cancel_flow", queue, flow_id)
    ids: list[str] = (await conn.run(batch))[0]
    return ids

