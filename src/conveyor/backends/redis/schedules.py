"""The schedule verbs on Redis (lua/schedule_*.lua).

A schedule's hash lives in its queue's slot, ``P:{q:<queue>}:schedule:<name>``, so one
script can check its version, store the tick's job and advance it (see schedule_fire.lua);
``P:{g}:schedules`` maps each name to its queue, to find it. As with the job id index
(keyspace.py) the map is written before the schedule and read as a hint: an entry whose
hash is gone reads as no schedule.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ...jobs import JobState
from ...serialization import dumps
from ..schedules import Fired, Firing, ScheduleRecord
from . import codec
from .scripts import Batch

if TYPE_CHECKING:
    from .connect import Settings
    from .keyspace import Keyspace

_EMPTY = ("", None)


class RedisSchedules:
    """The schedule verbs of `RedisBackend` (mixed in ahead of `Backend`)."""

    if TYPE_CHECKING:
        keys: Keyspace
        settings: Settings
        cluster: bool

        async def _run(self, batch: Batch) -> list[Any]: ...

        async def _connected(self) -> None: ...

    def _schedule_key(self, queue: str, name: str) -> str:
        self.keys.queue(queue)  # refuses a queue name Redis cannot tag
        return f"{self.keys.prefix}:{{q:{queue}}}:schedule:{name}"

    @property
    def _registry(self) -> str:
        return f"{self.keys.prefix}:{{g}}:schedules"

    async def schedules(self) -> list[ScheduleRecord]:
        return sorted(await self._read(None), key=lambda r: r.name)

    async def _read(self, only: str | None) -> list[ScheduleRecord]:
        batch = Batch()
        if only is None:
            batch.command("HGETALL", self._registry)
        else:
            batch.command("HMGET", self._registry, only)
        reply = (await self._run(batch))[0]
        where = reply if only is None else ({only: reply[0]} if reply[0] else {})
        by_queue: dict[str, list[str]] = {}
        for name, queue in where.items():
            by_queue.setdefault(queue, []).append(name)
        batch = Batch()
        for queue, names in by_queue.items():
            batch.script("schedule_read", [self.keys.queue(queue).keys[0],
                                           *(self._schedule_key(queue, n) for n in names)], [])
        out = []
        for entries in await self._run(batch):
            out += [_record(e) for e in entries if e]
        return out

    async def save_schedule(self, record: ScheduleRecord) -> ScheduleRecord | None:
        key = self._schedule_key(record.queue, record.name)
        batch = Batch()
        batch.command("HGET", self._registry, record.name)
        owner = (await self._run(batch))[0]
        if owner is not None and owner != record.queue:
            if not await self._moved(owner, record):
                return None
            record = _as_new(record)
        batch = Batch()
        batch.command("HSET", self._registry, record.name, record.queue)
        batch.script("schedule_save", [key], [
            record.version, record.name, record.queue, record.task, record.definition_json,
            record.overlap, "1" if record.paused else "0", record.origin,
            "" if record.next_run_at is None else record.next_run_at])
        if not (await self._run(batch))[1]:
            return None
        found = await self._read(record.name)
        return found[0] if found else None

    async def _moved(self, owner: str, record: ScheduleRecord) -> bool:
        """The name is stored in another queue's slot: a create finds it taken; a replace
        (the task's queue changed) takes it from there, if from the version stored."""
        stored = await self._read(record.name)
        if not stored:
            return True  # a stale registry entry
        if record.version == 0 or stored[0].version != record.version:
            return False
        batch = Batch()
        batch.script("schedule_delete", [self._schedule_key(owner, record.name)], [])
        await self._run(batch)
        return True

    async def delete_schedule(self, name: str) -> bool:
        batch = Batch()
        batch.command("HGET", self._registry, name)
        owner = (await self._run(batch))[0]
        if owner is None:
            return False
        batch = Batch()
        batch.script("schedule_delete", [self._schedule_key(owner, name)], [])
        batch.command("HDEL", self._registry, name)
        return bool((await self._run(batch))[0])

    async def fire_schedules(self, firings: Sequence[Firing]) -> list[Fired]:
        if not firings:
            return []
        await self._connected()
        if self.cluster:  # the id index lives in other slots: index first, as enqueue does
            await self._index_tick_ids([job for f in firings for _, job in f.jobs])
        batch = Batch()
        for firing in firings:
            self._fire_call(batch, firing)
        replies = await self._run(batch)
        fired = [Fired(bool(r[0]), [str(i) for i in r[5:]], int(r[2]), bool(r[3]),
                       bool(r[4]), int(r[1])) for r in replies]
        if self.cluster:
            stored = {i for f in fired for i in f.job_ids}
            await self._forget_tick_ids([job.id for f in firings for _, job in f.jobs
                                 if job.id not in stored])
        return fired

    def _fire_call(self, batch: Batch, f: Firing) -> None:
        queue_keys = self.keys.queue(f.queue).keys
        keys = [*queue_keys, self._schedule_key(f.queue, f.name)]
        if not self.cluster:  # indexing here: the queue registry and the id index shards
            keys.append(self.keys.queues)
        shards: dict[str, int] = {}
        error = summary = ""
        if f.expire_job_id is not None:
            error = dumps({"type": "ScheduleExpired", "message": f.expire_reason})
            summary = dumps(f"ScheduleExpired: {f.expire_reason}")
        args: list[Any] = [
            self.settings.events_max_len, f.queue, "0" if self.cluster else "1", f.version,
            "1" if f.advance else "0", "" if f.next_run_at is None else f.next_run_at,
            f.skipped_misfire, "1" if f.force else "0",
            "" if f.pending_tick_at is None else f.pending_tick_at,
            f.expire_job_id or "", error, summary]
        for tick, job in f.jobs:
            place: int | str = ""
            if not self.cluster:
                shard = self.keys.index(job.id)
                place = shards.setdefault(shard, len(keys) + 1)
                if place == len(keys) + 1:
                    keys.append(shard)
            args += [tick, *codec.new_job_args(job), place, job.flow or ""]
        batch.script("schedule_fire", keys, args)

    async def _index_tick_ids(self, jobs: Sequence[Any]) -> None:
        if jobs:
            batch = Batch()
            batch.command("SADD", self.keys.queues, *{j.queue for j in jobs})
            for job in jobs:
                batch.command("HSETNX", self.keys.index(job.id), job.id, job.queue)
            await self._run(batch)

    async def _forget_tick_ids(self, ids: Sequence[str]) -> None:
        if ids:
            batch = Batch()
            for job_id in ids:
                batch.command("HDEL", self.keys.index(job_id), job_id)
            await self._run(batch)


def _as_new(record: ScheduleRecord) -> ScheduleRecord:
    from dataclasses import replace

    return replace(record, version=0)


def _int(value: Any) -> int | None:
    return None if value in _EMPTY or value is False else int(value)


def _record(entry: Sequence[Any]) -> ScheduleRecord:
    h = codec.fields(entry[0])
    state = entry[1] or None
    return ScheduleRecord(
        name=h["name"], queue=h["queue"], task=h["task"], definition_json=h["definition"],
        overlap=h["overlap"], paused=h["paused"] == "1", origin=h["origin"],
        next_run_at=_int(h.get("next_run_at")), version=int(h["version"]),
        last_tick_at=_int(h.get("last_tick_at")), last_job_id=h.get("last_job"),
        last_job_state=None if state is None else JobState(state),
        last_run_at=_int(h.get("last_run_at")),
        last_success_at=_int(entry[2]) if state == "completed"
        else _int(h.get("last_success_at")),
        pending_tick_at=_int(h.get("pending_tick_at")), enqueued=int(h.get("enqueued", 0)),
        skipped_overlap=int(h.get("skipped_overlap", 0)),
        skipped_misfire=int(h.get("skipped_misfire", 0)), expired=int(h.get("expired", 0)),
        created_at=_int(h.get("created_at")), updated_at=_int(h.get("updated_at")))
