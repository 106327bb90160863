"""The claimer: the worker's pipelined fetch + settle loop.

One backend call claims up to half the worker's slots and records the outcomes of the jobs
that just finished ("settle previous + fetch next"), so a busy worker makes one round trip
per batch, not per job. Under load a second such call goes out while the first is in
flight (its slots reserved), so the backend works on one batch while this process decodes
and runs the other; never more than two ordinary calls. When an answer comes back short
and nothing is in flight, one idle claim goes out (`fetch_when_ready`): the backend holds
it until work arrives, the next delayed job is due or the poll interval passes (no busy
polling); a job finishing meanwhile is recorded by an ordinary call beside it. The idle
claim is interrupted when the worker stops, or (until_idle) once nothing is left to do.

A failed call's outcomes are kept and sent again with the next call; after failures the
loop backs off (50 ms doubling, at most 2 s). Stopping: the idle claim is interrupted and
every call in flight is awaited, its claims started (they run or are handed back) and its
outcomes absorbed like any other answer.

Each decision is one named predicate below, and `_absorb` is the one place a call's answer
(or error) changes the loop's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Coroutine, Sequence, Sized
from typing import TYPE_CHECKING, Any

from ..backends.base import Claim, Fetched, Settlement

if TYPE_CHECKING:
    from ..app import Conveyor

log = logging.getLogger("conveyor.worker")
COMMAND_WAIT = 60.0  # a call in flight kicks the loop when it ends: this is only a backstop


@dataclasses.dataclass(slots=True)
class _Call:
    """A backend call in flight: the slots it claims for, the outcomes it records, and
    (for the idle claim) the event that interrupts it."""

    want: int
    settle: list[Settlement]
    interrupt: asyncio.Event | None


class Claimer:
    def __init__(self, app: Conveyor, queues: Sequence[str], worker_id: str, *,
                 concurrency: int, lease_ms: int, poll_interval: float, running: Sized,
                 start: Callable[[Claim], object],
                 recorded: Callable[[Sequence[Settlement], Sequence[bool]], None]) -> None:
        self.app = app
        self.queues = list(queues)
        self.worker_id = worker_id
        self.concurrency = concurrency
        # At most half the slots per claim: while one batch's call is in flight the
        # previous batch runs, so the worker and the backend work at the same time.
        self.batch = max(1, (concurrency + 1) // 2)
        self.lease_ms = lease_ms
        self.poll_interval = poll_interval
        self._running = running  # jobs started and not yet finished
        self._start = start
        self._recorded = recorded
        self.settlements: list[Settlement] = []  # outcomes waiting for the next call
        self.kick = asyncio.Event()  # a job finished, a call ended, or we are stopping
        self.changed = True  # a job finished, work arrived or we are stopping: look again
        self.stopping = False
        self._calls: dict[asyncio.Task[Fetched], _Call] = {}
        self._ordinary = 0  # calls in flight that are not the idle claim
        self._idle_claim: asyncio.Event | None = None  # its interrupt, while one is out
        self._reserved = 0  # slots promised to the claims of the calls in flight
        self._more = True  # the last answer filled its batch: more work may be waiting
        self._next_due: int | None = None  # ms until the next delayed job, as last told
        self._failures = 0
        self._retry_at = 0.0

    # -- what the worker tells the loop -------------------------------------------------
    def settle(self, settlement: Settlement | None) -> None:
        """A job finished: record its outcome with the next call (None: nothing to record)."""
        if settlement is not None:
            self.settlements.append(settlement)
        self.changed = True
        self.kick.set()

    def stop(self) -> None:
        self.stopping = True
        self.changed = True
        self.kick.set()

    def take_settlements(self) -> list[Settlement]:
        settle, self.settlements = self.settlements, []
        return settle

    # -- decisions ----------------------------------------------------------------------
    def free_slots(self) -> int:
        """Slots neither running a job nor reserved by a call in flight, up to a batch."""
        return max(min(self.concurrency - len(self._running) - self._reserved, self.batch), 0)

    def in_backoff(self) -> bool:
        return asyncio.get_running_loop().time() < self._retry_at

    def should_claim(self, want: int) -> bool:
        """Send an ordinary fetch + settle call now? With none in flight: when there are
        slots or outcomes and something may have changed. With one in flight: a second
        beside it, under load only (the last answer was full) and no idle claim out."""
        if self._ordinary == 0:
            return (want > 0 or bool(self.settlements)) and (self._more or self.changed)
        return self._ordinary == 1 and self._idle_claim is None and self._more and want > 0

    def should_wait_in_backend(self, want: int) -> bool:
        """Send the idle claim: nothing in flight, free slots, nothing to claim now."""
        return not self._calls and want > 0

    def is_drained(self) -> bool:
        """Nothing to do (until_idle): no ordinary call out, no job running, no outcome
        waiting, the last answer short and no delayed job due."""
        return (self._ordinary == 0 and not self._more and not self._running
                and not self.settlements and self._next_due is None)

    def _poll_timeout(self) -> float:
        """How long nothing may happen: the poll interval, or less if a delayed job is due."""
        if self._next_due is None:
            return self.poll_interval
        return min(self.poll_interval, self._next_due / 1000)

    def _wait_timeout(self) -> float:
        if self._calls:
            return COMMAND_WAIT
        now = asyncio.get_running_loop().time()
        if now < self._retry_at:
            return self._retry_at - now
        return self._poll_timeout()

    # -- the loop -----------------------------------------------------------------------
    async def run(self, until_idle: bool) -> None:
        """Claim and record until stopping (or, with until_idle, until drained)."""
        while not self.stopping:
            self.kick.clear()  # anything from here on wakes the wait below
            for call in [c for c in self._calls if c.done()]:
                self._absorb(call)
            if until_idle and self.is_drained():
                if self._idle_claim is None:
                    return
                self._idle_claim.set()  # drained: end the idle claim now, not at its timeout
            if self._send_next():
                continue
            if not await wait_event(self.kick, self._wait_timeout()) and not self._calls:
                self.changed = True  # a quiet spell: look again (delayed jobs, safety poll)
        await self._absorb_in_flight()

    def _send_next(self) -> bool:
        """Send the call the state asks for, if any; whether one went out."""
        want = self.free_slots()
        if self.in_backoff():
            return False
        backend = self.app.backend
        if self.should_claim(want):
            self.changed = False
            settle = self.take_settlements()
            self._send(backend.fetch(self.queues, want, self.worker_id, self.lease_ms, settle),
                       _Call(want, settle, None))
        elif self.should_wait_in_backend(want):
            interrupt = asyncio.Event()
            self._send(backend.fetch_when_ready(self.queues, want, self.worker_id, self.lease_ms,
                                                self._poll_timeout(), interrupt),
                       _Call(want, [], interrupt))
        else:
            return False
        return True

    def _send(self, coro: Coroutine[Any, Any, Fetched], call: _Call) -> None:
        sent = asyncio.create_task(coro)
        sent.add_done_callback(lambda _: self.kick.set())
        self._calls[sent] = call
        self._reserved += call.want
        if call.interrupt is None:
            self._ordinary += 1
        else:
            self._idle_claim = call.interrupt

    def _absorb(self, sent: asyncio.Task[Fetched]) -> None:
        """A call has ended: start its claims and report its refused outcomes, or keep its
        outcomes for the next call and back off."""
        call = self._calls.pop(sent)
        self._reserved -= call.want
        if call.interrupt is None:
            self._ordinary -= 1
        else:
            self._idle_claim = None
        try:
            fetched = sent.result()
        except Exception as exc:  # an outage (any driver's error): keep going
            self.settlements[:0] = call.settle  # keep outcomes until they are recorded
            self._failures += 1
            if not self.stopping:
                log.error("fetch failed (%s: %s); retrying", type(exc).__name__, exc)
            self._retry_at = asyncio.get_running_loop().time() + min(
                0.05 * 2**self._failures, 2.0)
            self._more = False
            return
        self._failures = 0
        self._recorded(call.settle, fetched.settled)
        for claim in fetched.claims:
            self._start(claim)
        self._more = call.want > 0 and len(fetched.claims) == call.want
        self._next_due = fetched.next_due_in_ms

    async def _absorb_in_flight(self) -> None:
        """Stopping: the idle claim answers at once; the claims of every call in flight
        run or are handed back, and their outcomes are absorbed."""
        if self._idle_claim is not None:
            self._idle_claim.set()
        for sent in list(self._calls):
            with contextlib.suppress(Exception):
                await sent
            self._absorb(sent)


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait for `event` at most `timeout` seconds; whether it was set (asyncio.timeout
    never swallows a cancellation of the caller, unlike wait_for on Python 3.11)."""
    if event.is_set():
        return True
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(timeout, 0)):
            await event.wait()
    return event.is_set()
