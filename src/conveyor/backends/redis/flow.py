"""Flow control on Redis (conveyor/flow): storing limits, reading their use, and why a job
waits. The claim's side is Lua (lua/includes/flow.lua, run inside fetch.lua); the keys
are documented in keyspace.py. Each queue's limits live under its hash tag; the set
``P:{g}:flow_queues`` names the queues that have stored limits, for `limits()`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from ...flow.spec import Rate
from ...serialization import dumps
from ..base import LimitInfo, LimitUse
from .connection import Connection
from .scripts import Batch


def flow_queues_key(conn: Connection) -> str:
    return f"{conn.keys.prefix}:{{g}}:flow_queues"


async def declare_limits(conn: Connection,
                         limits: Sequence[tuple[str, str, dict[str, Any]]]) -> None:
    by_queue: dict[str, list[Any]] = {}
    for queue, name, limit in limits:
        conn.keys.queue(queue)  # a bad queue name is refused before anything is written
        by_queue.setdefault(queue, []).extend([name, dumps(limit)])
    if not by_queue:
        return
    batch = Batch()
    batch.command("SADD", flow_queues_key(conn), *by_queue)
    for queue, args in by_queue.items():
        conn.queue_script(batch, "flow_declare", queue, "declared", *args)
    await conn.run(batch)


async def set_limit(conn: Connection, queue: str, name: str,
                    limit: dict[str, Any] | None) -> None:
    batch = Batch()
    batch.command("SADD", flow_queues_key(conn), queue)
    conn.queue_script(batch, "flow_declare", queue, "override", name,
                      "" if limit is None else dumps(limit))
    await conn.run(batch)


def _pairs(flat: Sequence[Any]) -> list[tuple[str, Any]]:
    return [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]


def _split(slot_key: str) -> tuple[str, str]:
    lim, _, key = slot_key.partition("\n")
    return lim, key


def _queue_limits(queue: str, reply: Sequence[Any]) -> list[LimitInfo]:
    declared_flat, overrides_flat, slots, pauses, starts, blocked_flat = reply
    declared = {k: orjson.loads(v) for k, v in _pairs(declared_flat)}
    overrides = {k: orjson.loads(v) for k, v in _pairs(overrides_flat)}
    use: dict[str, dict[str, dict[str, Any]]] = {}

    def entry(slot_key: str) -> dict[str, Any]:
        lim, key = _split(slot_key)
        return use.setdefault(lim, {}).setdefault(key, {"key": key})

    for slot_key, used in _pairs(slots):
        if int(used) > 0:
            entry(slot_key)["active"] = int(used)
    for slot_key, until in _pairs(pauses):
        entry(slot_key)["paused_until"] = int(until)
    for slot_key, count in _pairs(starts):
        entry(slot_key)["starts"] = int(count)
    blocked: dict[str, dict[str, int]] = {}
    for slot_key, waiting in _pairs(blocked_flat):
        lim, key = _split(slot_key)
        blocked.setdefault(lim, {})[key] = int(waiting)
    return [
        LimitInfo(queue=queue, name=name, declared=declared.get(name),
                  override=overrides.get(name),
                  use=tuple(LimitUse(**u) for _, u in sorted(use.get(name, {}).items())),
                  blocked=blocked.get(name, {}))
        for name in sorted(set(declared) | set(overrides))
    ]


async def limits(conn: Connection) -> list[LimitInfo]:
    batch = Batch()
    batch.command("SMEMBERS", flow_queues_key(conn))
    queues = sorted((await conn.run(batch))[0])
    if not queues:
        return []
    batch = Batch()
    for queue in queues:
        conn.queue_script(batch, "flow_read", queue)
    out: list[LimitInfo] = []
    for queue, reply in zip(queues, await conn.run(batch), strict=True):
        out += _queue_limits(queue, reply)
    return out


async def flow_blockers(conn: Connection, job_id: str) -> list[dict[str, Any]]:
    queue = (await conn.locate([job_id])).get(job_id)
    if queue is None:
        return []
    batch = Batch()
    conn.queue_script(batch, "flow_why", queue, job_id)
    reasons: list[dict[str, Any]] = orjson.loads((await conn.run(batch))[0])
    for r in reasons:
        if r["reason"] == "rate_limited":
            r["rate"] = str(Rate(int(r["rate"][0]), int(r["rate"][1])))
        for field in ("until", "used", "limit"):
            if field in r:
                r[field] = int(r[field])
    return reasons
