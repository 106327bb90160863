"""Claims on Redis: a worker's fetch (settle the previous batch, promote due jobs, lease
the next batch, in one script call per queue) and the bookkeeping that makes a claim
whose reply was lost safe to repeat.

Each claim call carries a token prefix and one of two slots per (queue, worker). When a
call's reply never comes (a dropped connection after Redis ran it), the next call in that
slot repeats its prefix, and fetch.lua hands over the jobs the lost call leased instead
of leaving them to expire (see fetch.lua). A worker of several queues first peeks at each
queue's head and then claims from each its share of the best `limit` jobs.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..base import Claim, Fetched, Settlement
from . import codec
from .connection import Connection
from .keyspace import queue_of_token
from .scripts import Batch


@dataclass(slots=True)
class _FetchPlan:
    queues: list[str]
    limit: int
    worker_id: str
    lease_ms: int
    peek: bool = False
    batch: Batch = field(default_factory=Batch)
    # queue -> (token prefix, slot) of its claim call
    prefixes: dict[str, tuple[str, int]] = field(default_factory=dict)
    # per queue: its fetch call's index in the batch, and its settlements' positions
    calls: list[tuple[str, int, list[int]]] = field(default_factory=list)
    # settle calls for the queues the worker does not fetch from: positions, index
    others: list[tuple[list[int], int]] = field(default_factory=list)


def settle_groups(settle: Sequence[Settlement]) -> dict[str, list[int]]:
    """Positions of the settlements per queue (the queue is in the lease token)."""
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(settle):
        queue = queue_of_token(s.token)
        if queue is not None and not any(c in queue for c in "{}"):
            groups.setdefault(queue, []).append(i)
    return groups


def settle_args(settle: Sequence[Settlement], positions: list[int]) -> list[Any]:
    args: list[Any] = [len(positions)]
    for i in positions:
        args += codec.settlement_args(settle[i])
    return args


class Claims:
    """The claim calls of one backend instance (all its workers)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        # (queue, worker id, slot) -> token prefix of a claim call whose reply never came:
        # the next call in that slot repeats it, so fetch.lua hands over what it leased
        self._unanswered: dict[tuple[str, str, int], str] = {}
        # (queue, worker id) -> the slots of its claim calls in flight (a worker may have
        # two: each keeps its own last-claim record, see fetch.lua)
        self._in_flight: dict[tuple[str, str], set[int]] = {}

    async def fetch(self, queues: Sequence[str], limit: int, worker_id: str, lease_ms: int,
                    settle: Sequence[Settlement]) -> Fetched:
        plan = self._plan_fetch(queues, limit, worker_id, lease_ms, settle)
        results = await self._claim_calls(plan.prefixes, worker_id, self.conn.run(plan.batch))
        return await self._fetched(plan, results, settle)

    async def fetch_on_wake(self, queues: Sequence[str], limit: int, worker_id: str,
                            lease_ms: int, timeout: float, interrupt: asyncio.Event) -> Fetched:
        """The claim sent right behind the BLPOP, on one server (see wakeup.py)."""
        waker = self.conn.waker
        assert waker is not None
        plan = self._plan_fetch(queues, limit, worker_id, lease_ms, ())
        woken = waker.claim_on_wake(plan.queues, timeout, plan.batch, interrupt,
                                    self.conn.client)
        results = await self._claim_calls(plan.prefixes, worker_id, woken)
        return await self._fetched(plan, results, ())

    async def settle(self, settlements: Sequence[Settlement]) -> list[bool]:
        settled = [False] * len(settlements)
        batch = Batch()
        calls = [(positions, self.conn.queue_script(batch, "settle", queue,
                                                    *settle_args(settlements, positions)))
                 for queue, positions in settle_groups(settlements).items()]
        results = await self.conn.run(batch)
        for positions, index in calls:
            for i, ok in zip(positions, results[index], strict=True):
                settled[i] = ok == 1
        return settled

    # -- claim calls --------------------------------------------------------------------
    def _begin_call(self, queue: str, worker_id: str) -> tuple[str, int]:
        """(token prefix, slot) for a claim call, in a slot no call of this worker has in
        flight; a slot whose last call never got its reply first (that call may have run:
        the repeated prefix makes fetch.lua hand over what it leased), else a new prefix."""
        busy = self._in_flight.setdefault((queue, worker_id), set())
        free = [slot for slot in (0, 1) if slot not in busy] or [1]
        slot = next((s for s in free if (queue, worker_id, s) in self._unanswered), free[0])
        prefix = self._unanswered.pop((queue, worker_id, slot), None)
        busy.add(slot)
        return prefix or f"{queue}:{secrets.token_hex(6)}.", slot

    def _end_calls(self, calls: dict[str, tuple[str, int]], worker_id: str,
                   answered: bool) -> None:
        for queue, (prefix, slot) in calls.items():
            self._in_flight.get((queue, worker_id), set()).discard(slot)
            if not answered:
                self._unanswered[(queue, worker_id, slot)] = prefix

    async def _claim_calls(self, calls: dict[str, tuple[str, int]], worker_id: str,
                           sent: Awaitable[list[Any]]) -> list[Any]:
        """Await `sent`, a batch of claim calls on its way, keeping the prefix and slot of
        each whose reply never came for the worker's next call."""
        try:
            results = await sent
        except BaseException:
            self._end_calls(calls, worker_id, answered=False)
            raise
        self._end_calls(calls, worker_id, answered=True)
        return results

    # -- one fetch ----------------------------------------------------------------------
    def _plan_fetch(self, queues: Sequence[str], limit: int, worker_id: str, lease_ms: int,
                    settle: Sequence[Settlement]) -> _FetchPlan:
        """The script calls of one fetch: per queue, settle its outcomes and claim (or,
        for several queues, peek at their heads); outcomes of other queues are settled."""
        plan = _FetchPlan(list(dict.fromkeys(queues)), max(limit, 0), worker_id, lease_ms)
        groups = settle_groups(settle)
        plan.peek = len(plan.queues) > 1 and plan.limit > 0
        queue_script = self.conn.queue_script
        for queue in plan.queues:
            positions = groups.pop(queue, [])
            prefix, slot = plan.prefixes[queue] = self._begin_call(queue, worker_id)
            index = queue_script(
                plan.batch, "fetch", queue, "peek" if plan.peek else "claim", plan.limit,
                worker_id, lease_ms, prefix, slot, *settle_args(settle, positions))
            plan.calls.append((queue, index, positions))
        plan.others = [(positions, queue_script(plan.batch, "settle", queue,
                                                *settle_args(settle, positions)))
                       for queue, positions in groups.items()]
        return plan

    async def _fetched(self, plan: _FetchPlan, results: list[Any],
                       settle: Sequence[Settlement]) -> Fetched:
        settled = [False] * len(settle)
        for positions, index in plan.others:
            for i, ok in zip(positions, results[index], strict=True):
                settled[i] = ok == 1
        claims: list[Claim] = []
        dues: list[int] = []
        heads: list[tuple[float, str, str]] = []
        worker_id, limit = plan.worker_id, plan.limit
        for queue, index, positions in plan.calls:
            flags, leased, values, due, head, now = results[index]
            for i, ok in zip(positions, flags, strict=True):
                settled[i] = ok == 1
            claims += [codec.claim(queue, worker_id, now, lease, v)
                       for lease, v in zip(leased, values, strict=True)]
            dues.append(due)
            heads += [(float(head[j + 1]), head[j], queue) for j in range(0, len(head), 2)]
        if plan.peek:
            more, more_dues = await self._claim_split(heads, max(limit - len(claims), 0),
                                                      worker_id, plan.lease_ms)
            claims += more
            dues += more_dues
            claims.sort(key=lambda c: (-c.job.priority, c.job.scheduled_at))
        next_due = None
        if len(claims) < limit:
            known = [d for d in dues if d >= 0]
            next_due = min(known) if known else None
        if self.conn.waker is not None:
            self.conn.waker.fed(plan.queues, limit, len(claims))
        return Fetched(claims, settled, next_due)

    async def _claim_split(self, heads: list[tuple[float, str, str]], limit: int,
                           worker_id: str, lease_ms: int) -> tuple[list[Claim], list[int]]:
        """Claim the best `limit` of the peeked heads, from each queue its share."""
        heads.sort()
        share = Counter(queue for _, _, queue in heads[:limit])
        batch = Batch()
        queues = list(dict.fromkeys(queue for _, _, queue in heads))
        prefixes: dict[str, tuple[str, int]] = {}
        for queue in queues:
            prefix, slot = prefixes[queue] = self._begin_call(queue, worker_id)
            # a queue with no share still gets a call: it passes its wake-up token on
            self.conn.queue_script(batch, "fetch", queue, "claim", share[queue], worker_id,
                                   lease_ms, prefix, slot, 0)
        claims: list[Claim] = []
        dues: list[int] = []
        results = await self._claim_calls(prefixes, worker_id, self.conn.run(batch))
        for queue, (_, leased, values, due, _, now) in zip(queues, results, strict=True):
            claims += [codec.claim(queue, worker_id, now, lease, v)
                       for lease, v in zip(leased, values, strict=True)]
            dues.append(due)
        return claims, dues
