"""The Redis backend's connections, and the one place a batch is sent.

Two kinds of client share one backend instance:

- the event loop's: a command client and a blocking client (idle workers' BLPOP), made
  on first use in each event loop. Connections belong to one loop; an instance used from
  a new loop (the app object of a test suite, `drain` called twice) connects again
  there, and the old loop closed its connections on its way out (`_close_with_loop`).
- the sync API's: one thread-safe synchronous client, used while `is_inline()` (see the
  contract's docstring), made on first inline call.

Every Lua script is compiled on the first connection to one server (SCRIPT LOAD), so a
broken install fails at start-up; later calls go by SHA, with EVAL where a server does
not know it (scripts.py). On Cluster the nodes learn each script on first use.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncGenerator, Iterable
from typing import Any

from redis import exceptions as rx

from ...reentry import refuse_reentry
from ..base import is_inline
from .connect import Settings, connect, connect_blocking
from .keyspace import Keyspace
from .scripts import SCRIPTS, Batch, backend_error, run, run_blocking
from .wakeup import Waker


def _load_scripts() -> Batch:
    batch = Batch()
    for script in SCRIPTS.values():
        batch.command("SCRIPT", "LOAD", script.text)
    return batch


class Connection:
    """What a backend instance talks to Redis through, in either calling mode."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = Keyspace(settings.prefix)
        self.cluster = False
        self.client: Any = None  # the running loop's command client
        self.waker: Waker | None = None
        self._blocking: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opening: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self._guard: AsyncGenerator[None, None] | None = None
        self._checked = False  # durability settings checked (once per instance)
        self._sync_client: Any = None
        self._sync_lock = threading.Lock()

    # -- sending ------------------------------------------------------------------------
    async def run(self, batch: Batch) -> list[Any]:
        """Send a batch in the caller's mode; the answers in order."""
        if is_inline():
            return run_blocking(self.sync_client(), batch)
        return await run(await self.ready(), batch)

    async def connected(self) -> None:
        """Connected in the caller's mode (which also tells whether this is a Cluster)."""
        if is_inline():
            self.sync_client()
        else:
            await self.ready()

    def queue_script(self, batch: Batch, name: str, queue: str, *args: Any) -> int:
        """Add a call of a queue script: KEYS are the queue's, ARGV[1] the events cap."""
        return batch.script(name, self.keys.queue(queue).keys,
                            (self.settings.events_max_len, *args))

    async def queue_names(self) -> list[str]:
        batch = Batch()
        batch.command("SMEMBERS", self.keys.queues)
        return sorted((await self.run(batch))[0])

    async def locate(self, job_ids: Iterable[str]) -> dict[str, str]:
        """The queue of each indexed job id."""
        ids = list(dict.fromkeys(job_ids))
        batch = Batch()
        for job_id in ids:
            batch.command("HGET", self.keys.index(job_id), job_id)
        found = await self.run(batch)
        return {job_id: queue for job_id, queue in zip(ids, found, strict=True)
                if queue is not None}

    def unindex(self, batch: Batch, queue: str, job_ids: Iterable[str]) -> None:
        shards: dict[str, list[str]] = {}
        for job_id in job_ids:
            shards.setdefault(self.keys.index(job_id), []).append(job_id)
        for shard, ids in shards.items():
            batch.script("unindex", [shard], [queue, *ids])

    # -- the event loop's clients -------------------------------------------------------
    async def ready(self) -> Any:
        """The command client of the running event loop, connecting on first use."""
        loop = asyncio.get_running_loop()
        if self._loop is loop and self.client is not None:
            return self.client
        if self._opening is None or self._opening[0] is not loop:
            self._opening = (loop, asyncio.Lock())
        async with self._opening[1]:
            if self._loop is not loop or self.client is None:
                await self._connect(loop)
        return self.client

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> None:
        refuse_reentry()
        try:
            client, blocking, cluster = await connect(self.settings, check=not self._checked)
        except rx.RedisError as exc:
            raise backend_error(exc) from exc
        self._checked = True
        if not cluster:
            try:
                await run(client, _load_scripts())
            except BaseException:
                await blocking.aclose()
                await client.aclose()
                raise
        self.client, self._blocking, self.cluster, self._loop = client, blocking, cluster, loop
        self.waker = Waker(blocking, self.keys, cluster)
        self._guard = self._close_with_loop()
        await anext(self._guard)

    async def _close_with_loop(self) -> AsyncGenerator[None, None]:
        # An async generator that never finishes: asyncio.run() closes every such generator
        # before it closes its loop, which runs this `finally` inside that loop, in time to
        # close the connections there.
        try:
            yield
        finally:
            await self._disconnect()

    async def _disconnect(self) -> None:
        client, blocking, loop = self.client, self._blocking, self._loop
        if client is None:
            return
        self.client = self._blocking = self.waker = self._loop = None
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            for c in (blocking, client):
                await c.aclose()

    # -- the sync API's client ----------------------------------------------------------
    def sync_client(self) -> Any:
        """The synchronous client of the sync API, connecting on first use."""
        client = self._sync_client
        if client is not None:
            return client
        with self._sync_lock:
            if self._sync_client is None:
                refuse_reentry()
                try:
                    client, cluster = connect_blocking(self.settings, check=not self._checked)
                except rx.RedisError as exc:
                    raise backend_error(exc) from exc
                if not cluster:
                    try:
                        run_blocking(client, _load_scripts())
                    except BaseException:
                        client.close()
                        raise
                self._checked, self.cluster, self._sync_client = True, cluster, client
            return self._sync_client

    # -- closing ------------------------------------------------------------------------
    async def close(self) -> None:
        """Close the sync client, and (outside inline calls) this loop's clients."""
        with self._sync_lock:
            client, self._sync_client = self._sync_client, None
        if client is not None:
            client.close()
        if is_inline():
            return  # the async side belongs to its event loop
        await self._disconnect()
        guard, self._guard = self._guard, None
        if guard is not None:
            with contextlib.suppress(RuntimeError):
                await guard.aclose()
