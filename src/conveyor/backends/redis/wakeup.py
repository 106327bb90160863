"""Blocking wake-ups: idle workers sleep in BLPOP on their queues' wake lists.

A script that makes work available (enqueue, a retry, a release, a rescue, resume) pushes
tokens onto the queue's wake list (at most 16 stay there); each token wakes one blocked
worker, within a millisecond. Redis serves blocked clients in the order they blocked, so
the worker that has been idle longest goes first.

Only a worker that can take work competes for tokens: after a fetch that filled its
batch (or asked for nothing) this instance waits without BLPOP until its next fetch, so a
busy worker never swallows the token meant for an idle one. A fetch that fills its batch
and leaves jobs behind passes one token on, and a fetch that empties the queue drops the
stale ones, so a burst wakes as many workers as it needs, one round trip apart.

On one server a wait is one BLPOP over all the worker's queues. On Cluster the queues'
lists live in different slots, so each gets its own BLPOP and the first answer wins.

A worker's idle claim (`fetch_when_ready`, one server) sends its claim calls right behind
the BLPOP on the same connection: Redis holds them until the BLPOP returns and runs them
at once, so the jobs are leased the moment they arrive and come back with the wake-up, in
the same reply. An interrupt (the worker stopping) ends the BLPOP early with
``CLIENT UNBLOCK``, sent on the command connection, and the claim still runs and answers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from redis import exceptions as rx

from ...errors import BackendUnavailableError
from ...stopping import cancel_until_done
from .keyspace import Keyspace
from .scripts import Batch, backend_error, complete

MIN_BLOCK = 0.001  # BLPOP 0 would block forever
SLACK = 5.0  # extra time given to a BLPOP reply before the connection is deemed lost


class Waker:
    def __init__(self, client: Any, keyspace: Keyspace, cluster: bool) -> None:
        self._client = client
        self._ks = keyspace
        self._cluster = cluster
        self._hungry: dict[frozenset[str], bool] = {}
        self._fed: asyncio.Event | None = None

    def fed(self, queues: Sequence[str], limit: int, claimed: int) -> None:
        """Note a fetch: with room left over, this instance competes for wake-ups."""
        hungry = limit > 0 and claimed < limit
        self._hungry[frozenset(queues)] = hungry
        if hungry and self._fed is not None:
            self._fed.set()

    async def wait(self, queues: Sequence[str], timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        key = frozenset(queues)
        while not self._hungry.get(key, True):  # unknown: not driven by fetch, never gate
            if self._fed is None:
                self._fed = asyncio.Event()
            self._fed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that
            # arrives as the awaited event is set, and the worker would wait for us forever
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._fed.wait()
        remaining = deadline - loop.time()
        if not queues:
            await asyncio.sleep(max(remaining, 0))
            return
        if remaining < MIN_BLOCK:
            return
        keys = [self._ks.queue(q).wake for q in queues]
        try:
            if self._cluster and len(keys) > 1:
                woken = await self._first_of(keys, remaining)
            else:
                woken = await self._blpop(keys, remaining)
        except rx.RedisError as exc:
            raise backend_error(exc) from exc
        except TimeoutError:
            raise BackendUnavailableError("redis did not answer a blocking wait in time") from None
        if woken and key in self._hungry:
            self._hungry[key] = False  # until the fetch this wake-up is for

    async def _blpop(self, keys: list[str], timeout: float) -> bool:
        async with asyncio.timeout(timeout + SLACK):
            reply = await self._client.blpop(keys, timeout=round(timeout, 3))
        return reply is not None

    async def _first_of(self, keys: list[str], timeout: float) -> bool:
        waits = [asyncio.ensure_future(self._blpop([k], timeout)) for k in keys]
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                error = t.exception()
                if error is not None:
                    raise error
            return any(t.result() for t in done)
        finally:
            await cancel_until_done(*waits)

    async def claim_on_wake(self, queues: Sequence[str], timeout: float, batch: Batch,
                            interrupt: asyncio.Event, commands: Any) -> list[Any]:
        """Block on the queues' wake lists for up to `timeout` seconds, then run `batch`
        (one server only), all in one round trip; `batch`'s answers, scripts unknown to
        the server repeated on `commands` (the command client)."""
        keys = [self._ks.queue(q).wake for q in queues]
        pool = self._client.connection_pool
        try:
            conn = await pool.get_connection()
        except rx.RedisError as exc:
            raise backend_error(exc) from exc
        unblock: asyncio.Task[None] | None = None
        clean = False
        try:
            await conn.send_packed_command(conn.pack_commands(
                [("CLIENT", "ID"), ("BLPOP", *keys, round(max(timeout, MIN_BLOCK), 3)),
                 *batch.commands]))
            async with asyncio.timeout(timeout + SLACK):
                blocked_id = await conn.read_response()
                unblock = asyncio.ensure_future(_unblock_on(interrupt, commands, blocked_id))
                await conn.read_response()  # the BLPOP's: woken or not, the claim ran
                results: list[Any] = []
                for _ in batch.commands:
                    try:
                        results.append(await conn.read_response())
                    except rx.ResponseError as exc:  # this call's error; the rest answer
                        results.append(exc)
            clean = True
        except rx.RedisError as exc:
            raise backend_error(exc) from exc
        except TimeoutError:
            raise BackendUnavailableError("redis did not answer a blocking wait in time") from None
        finally:
            if unblock is not None:
                unblock.cancel()  # never awaited: nothing here can wait on it
            if not clean:  # replies may still be on their way: the connection is spent
                await conn.disconnect(nowait=True)
            await pool.release(conn)
        return await complete(commands, batch, results)


async def _unblock_on(interrupt: asyncio.Event, commands: Any, client_id: int) -> None:
    await interrupt.wait()
    with contextlib.suppress(rx.RedisError):
        await commands.execute_command("CLIENT", "UNBLOCK", client_id)
