"""Flow control inside the SQLite claim: which waiting jobs with limits may start now.

Runs in the claim's own transaction (store.fetch), so the check and the bookkeeping are
one atomic step with the lease. The tables are described in schema.sql (flow_*).

The claim of a queue holding flow-controlled jobs looks at *groups* (jobs with the same
gates, conveyor/flow/declare.py) instead of single jobs. Ready groups are taken in order
of their best job's priority, then their turn (`rot`); a group that starts a job gets the
next turn, so keys take turns (round robin) and a tenant with a long backlog cannot starve
one with three jobs. A group whose gates refuse is marked blocked until a time (rate,
pause) or parked on the full concurrency slot, and is skipped at no cost until then; jobs
of other groups behind it start. Jobs without limits in such a queue take part as one
more line that is never blocked.
"""

from __future__ import annotations

import heapq
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from ...flow.spec import Limit, Rate
from ...serialization import dumps
from ..base import LimitInfo, LimitUse

Candidate = tuple[int, int, int]  # seq, priority, scheduled_at
GateKey = tuple[str, str]  # limiter, key


def load_limits(conn: sqlite3.Connection, q: dict[str, str], queue: str) -> dict[str, Limit]:
    return {name: Limit.from_json(None if spec is None else orjson.loads(spec))
            for name, spec in conn.execute(q["flow_limits"], {"queue": queue})}


@dataclass(slots=True)
class Verdict:
    """Why a group may not start a job now (both None: it may)."""

    until: int | None = None  # blocked by time: a full rate window or a pause
    slot: GateKey | None = None  # parked on a full concurrency slot
    reasons: list[dict[str, Any]] = field(default_factory=list)

    @property
    def blocked(self) -> bool:
        return self.until is not None or self.slot is not None


class Gates:
    """The state of a queue's limiters as one claim sees it, with its own starts added."""

    def __init__(self, conn: sqlite3.Connection, q: dict[str, str], queue: str,
                 now: int, limits: dict[str, Limit], read_only: bool = False) -> None:
        self.conn, self.q, self.queue, self.now, self.limits = conn, q, queue, now, limits
        self.read_only = read_only
        self._in_window: dict[GateKey, int] = {}
        self._started: dict[GateKey, int] = {}
        self._used: dict[GateKey, int] = {}
        self._paused: dict[GateKey, int | None] = {}

    def _params(self, lim: str, key: str, **more: Any) -> dict[str, Any]:
        return {"queue": self.queue, "limiter": lim, "key": key, **more}

    def pause(self, lim: str, key: str) -> int | None:
        k = (lim, key)
        if k not in self._paused:
            row = self.conn.execute(self.q["flow_pause_of"],
                                    self._params(lim, key, now=self.now)).fetchone()
            self._paused[k] = None if row is None else row[0]
        return self._paused[k]

    def starts(self, lim: str, key: str, rate: Rate) -> int:
        """Starts through (lim, key) in the window ending now, this claim's included."""
        k = (lim, key)
        if k not in self._in_window:
            since = self.now - rate.window_ms
            if not self.read_only:
                self.conn.execute(self.q["flow_forget_starts"],
                                  self._params(lim, key, since=since))
            self._in_window[k] = self.conn.execute(
                self.q["flow_count_starts"], self._params(lim, key, since=since)).fetchone()[0]
        return self._in_window[k] + self._started.get(k, 0)

    def rate_until(self, lim: str, key: str, rate: Rate) -> int | None:
        """None if one more start fits the window, else when it will."""
        count = self.starts(lim, key, rate)
        if count < rate.count:
            return None
        offset = count - rate.count  # this start, oldest first, must leave the window
        stored = self._in_window[(lim, key)]
        at = self.now
        if offset < stored:
            at = self.conn.execute(self.q["flow_nth_start"], self._params(
                lim, key, since=self.now - rate.window_ms, offset=offset)).fetchone()[0]
        return int(at) + rate.window_ms

    def used(self, lim: str, key: str) -> int:
        k = (lim, key)
        if k not in self._used:
            row = self.conn.execute(self.q["flow_slots_of"], self._params(lim, key)).fetchone()
            self._used[k] = 0 if row is None else row[0]
        return self._used[k]

    def verdict(self, gates: Sequence[Sequence[str]]) -> Verdict:
        v = Verdict()
        for lim, rkey, ckey in gates:
            limit = self.limits.get(lim) or Limit()
            paused = self.pause(lim, rkey)
            if paused is not None:
                v.until = max(v.until or 0, paused)
                v.reasons.append({"reason": "paused", "limiter": lim, "key": rkey,
                                  "until": paused})
            if limit.rate is not None:
                until = self.rate_until(lim, rkey, limit.rate)
                if until is not None:
                    v.until = max(v.until or 0, until)
                    v.reasons.append({"reason": "rate_limited", "limiter": lim, "key": rkey,
                                      "until": until, "rate": str(limit.rate)})
            if limit.concurrency is not None:
                used = self.used(lim, ckey)
                if used >= limit.concurrency:
                    v.slot = v.slot or (lim, ckey)
                    v.reasons.append({"reason": "concurrency_full", "limiter": lim,
                                      "key": ckey, "used": used,
                                      "limit": limit.concurrency})
        return v

    def take(self, gates: Sequence[Sequence[str]]) -> None:
        for lim, rkey, ckey in gates:
            limit = self.limits.get(lim)
            if limit is not None and limit.rate is not None:
                self.starts(lim, rkey, limit.rate)  # loads the window before counting ours
                self._started[(lim, rkey)] = self._started.get((lim, rkey), 0) + 1
            self._used[(lim, ckey)] = self.used(lim, ckey) + 1


class FlowClaim:
    """One claim's plan for one queue: candidates in order, then `commit` of the kept."""

    def __init__(self, conn: sqlite3.Connection, q: dict[str, str], queue: str,
                 now: int) -> None:
        self.conn, self.q, self.queue, self.now = conn, q, queue, now
        self.gates = Gates(conn, q, queue, now, load_limits(conn, q, queue))
        self.chosen: list[Candidate] = []
        self._gates_of: dict[int, list[list[str]]] = {}
        self._turns: dict[str, int] = {}
        self._blocked: list[tuple[str, Verdict]] = []
        self._touched: set[str] = set()

    def plan(self, limit: int) -> list[Candidate]:
        q, params = self.q, {"queue": self.queue, "now": self.now, "limit": limit}
        free = self.conn.execute(q["flow_free_candidates"], params).fetchall()
        line: list[tuple[int, int, str]] = []  # (-priority, turn, group; '' = no limits)
        last_turn = 0
        for grp, rot, top in self.conn.execute(q["flow_ready_groups"], params):
            last_turn = max(last_turn, rot)
            if top is None:
                self._touched.add(grp)
            else:
                line.append((-top, rot, grp))
        if free:
            line.append((-free[0][1], 0, ""))
        heapq.heapify(line)
        heads: dict[str, list[Candidate]] = {"": free}
        taken: dict[str, int] = {}
        while line and len(self.chosen) < limit:
            _, _, grp = heapq.heappop(line)
            if grp and grp not in heads:
                gates = orjson.loads(grp)
                verdict = self.gates.verdict(gates)
                if verdict.blocked:
                    self._blocked.append((grp, verdict))
                    continue
                heads[grp] = self.conn.execute(q["flow_group_heads"],
                                               {**params, "grp": grp}).fetchall()
            elif grp:
                gates = orjson.loads(grp)
                verdict = self.gates.verdict(gates)
                if verdict.blocked:
                    self._blocked.append((grp, verdict))
                    continue
            n = taken.get(grp, 0)
            job = heads[grp][n]
            taken[grp] = n + 1
            self.chosen.append(job)
            last_turn += 1
            if grp:
                self.gates.take(gates)
                self._gates_of[job[0]] = gates
                self._turns[grp] = last_turn
                self._touched.add(grp)
            if n + 1 < len(heads[grp]):
                heapq.heappush(line, (-heads[grp][n + 1][1], last_turn, grp))
        return self.chosen

    def commit(self, kept: set[int]) -> None:
        """Write what the claim changed, for the candidates that were leased."""
        q, queue, conn = self.q, self.queue, self.conn
        starts: list[tuple[str, str, str, int]] = []
        slots: list[tuple[str, str, str]] = []
        for seq, gates in self._gates_of.items():
            if seq not in kept:
                continue
            for lim, rkey, ckey in gates:
                limit = self.gates.limits.get(lim)
                if limit is not None and limit.rate is not None:
                    starts.append((queue, lim, rkey, self.now))
                slots.append((queue, lim, ckey))
        if starts:
            conn.executemany(q["flow_record_start"], starts)
        if slots:
            conn.executemany(q["flow_take_slot"], slots)
        conn.executemany(q["flow_group_turn"],
                         [(turn, queue, grp) for grp, turn in self._turns.items()])
        for grp, verdict in self._blocked:
            if verdict.slot is not None:
                conn.execute(q["flow_group_parked"], (dumps(list(verdict.slot)), queue, grp))
            else:
                conn.execute(q["flow_group_blocked"], (verdict.until, queue, grp))
        conn.executemany(q["flow_group_drop"],
                         [(queue, grp, queue, grp) for grp in self._touched])


def explain(conn: sqlite3.Connection, q: dict[str, str], queue: str, grp: str,
            now: int) -> list[dict[str, Any]]:
    """Why a waiting job of this group cannot start now (read-only; [] if it can)."""
    gates = Gates(conn, q, queue, now, load_limits(conn, q, queue), read_only=True)
    reasons: list[dict[str, Any]] = gates.verdict(orjson.loads(grp)).reasons
    return reasons


def limits(conn: sqlite3.Connection, q: dict[str, str], now: int) -> list[LimitInfo]:
    """Every stored limiter with the use of each of its keys and the jobs it blocks."""
    stored = conn.execute(q["flow_all_limits"]).fetchall()
    use: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}

    def entry(queue: str, lim: str, key: str) -> dict[str, Any]:
        return use.setdefault((queue, lim), {}).setdefault(key, {"key": key})

    windows = {(queue, name): Limit.from_json(orjson.loads(spec)).rate
               for queue, name, declared, override in stored
               for spec in [override or declared] if spec}
    for queue, lim, key, used in conn.execute(q["flow_all_slots"]):
        entry(queue, lim, key)["active"] = used
    for queue, lim, key, until in conn.execute(q["flow_all_pauses"], {"now": now}):
        entry(queue, lim, key)["paused_until"] = until
    for (queue, lim), rate in windows.items():
        if rate is None:
            continue
        for key, count in conn.execute(
                "SELECT key, count(*) FROM flow_starts WHERE queue = ? AND limiter = ? "
                "AND at > ? GROUP BY key", (queue, lim, now - rate.window_ms)):
            entry(queue, lim, key)["starts"] = count
    blocked = _blocked(conn, q, now)
    return [
        LimitInfo(queue=queue, name=name,
                  declared=None if declared is None else orjson.loads(declared),
                  override=None if override is None else orjson.loads(override),
                  use=tuple(LimitUse(**u) for _, u in sorted(use.get((queue, name), {}).items())),
                  blocked=blocked.get((queue, name), {}))
        for queue, name, declared, override in stored
    ]


def _blocked(conn: sqlite3.Connection, q: dict[str, str],
             now: int) -> dict[tuple[str, str], dict[str, int]]:
    """(queue, limiter) -> key -> waiting jobs held back. A group the claim found blocked
    counts only under the gates that hold it now (a full slot under its concurrency key,
    a full window or a pause under its rate key), not under every limiter it passes; one
    that a runtime change has freed counts nowhere."""
    blocked: dict[tuple[str, str], dict[str, int]] = {}
    gates: dict[str, Gates] = {}
    for queue, grp, _until, _parked, waiting in conn.execute(q["flow_blocked_groups"],
                                                              {"now": now}):
        if queue not in gates:
            gates[queue] = Gates(conn, q, queue, now, load_limits(conn, q, queue),
                                 read_only=True)
        verdict = gates[queue].verdict(orjson.loads(grp))
        holding = {(r["limiter"], r["key"]) for r in verdict.reasons}
        for lim, key in holding:
            per_key = blocked.setdefault((queue, lim), {})
            per_key[key] = per_key.get(key, 0) + waiting
    return blocked
