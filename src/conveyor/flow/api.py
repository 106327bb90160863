"""Limits at runtime: list them with their use, change them without a deploy, and store
the app's declarations when a worker starts.

    app.limits.list()                                   # [LimitInfo, ...]
    app.limits.get("task:send_email")                   # one, with its use
    app.limits.set("task:send_email", rate_limit="20/s")  # next claim applies it
    app.limits.reset("task:send_email")                 # back to the declared limit

A runtime change is an override kept beside the declared limit; a worker starting with
new code rewrites the declared limit but leaves an override in force until `reset`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..backends import backend_for
from ..backends.base import Backend, LimitInfo
from ..errors import ConfigurationError, InvalidRequestError, UnknownLimiterError
from .spec import Limit, parse_concurrency, parse_rate

if TYPE_CHECKING:
    from ..app import Conveyor

log = logging.getLogger("conveyor.flow")
T = TypeVar("T")
OFF = "off"  # a part of a limit removed by `set`


class Limits:
    """The runtime API of one app's stored limits (``app.limits``)."""

    def __init__(self, app: Conveyor) -> None:
        self.app = app

    async def _backend(self) -> Backend:
        await self.app.aopen()
        return self.app.backend

    def _sync(self, call: Callable[[], Awaitable[T]]) -> T:
        self.app.open()

        async def run() -> T:
            return await call()
        return self.app.run_sync(run)

    async def alist(self) -> list[LimitInfo]:
        return await (await self._backend()).limits()

    def list(self) -> list[LimitInfo]:
        return self._sync(self.alist)

    async def aget(self, name: str, *, queue: str | None = None) -> LimitInfo:
        """One stored limiter (UnknownLimiterError if none; `queue` when the name is
        stored in several queues)."""
        return await self._find(await self._backend(), name, queue)

    def get(self, name: str, *, queue: str | None = None) -> LimitInfo:
        return self._sync(lambda: self.aget(name, queue=queue))

    async def aset(self, name: str, *, queue: str | None = None, rate_limit: Any = None,
                   concurrency: Any = None) -> LimitInfo:
        """Override a stored limiter: the parts given change ("off" removes one), the rest
        stay as they are in force now."""
        backend = await self._backend()
        current = await self._find(backend, name, queue)
        base = Limit.from_json(current.effective)
        rate = base.rate if rate_limit is None else (
            None if rate_limit == OFF else parse_rate(rate_limit))
        cap = base.concurrency if concurrency is None else (
            None if concurrency == OFF else parse_concurrency(concurrency))
        await backend.set_limit(current.queue, current.name,
                                Limit(rate=rate, concurrency=cap).to_json())
        return await self._find(backend, current.name, current.queue)

    def set(self, name: str, *, queue: str | None = None, rate_limit: Any = None,
            concurrency: Any = None) -> LimitInfo:
        return self._sync(lambda: self.aset(name, queue=queue, rate_limit=rate_limit,
                                            concurrency=concurrency))

    async def areset(self, name: str, *, queue: str | None = None) -> LimitInfo:
        """Drop the runtime override: the declared limit is in force again."""
        backend = await self._backend()
        current = await self._find(backend, name, queue)
        await backend.set_limit(current.queue, current.name, None)
        return await self._find(backend, current.name, current.queue)

    def reset(self, name: str, *, queue: str | None = None) -> LimitInfo:
        return self._sync(lambda: self.areset(name, queue=queue))

    async def _find(self, backend: Backend, name: str, queue: str | None) -> LimitInfo:
        found = [info for info in await backend.limits()
                 if info.name == name and (queue is None or info.queue == queue)]
        if not found:
            where = "" if queue is None else f" in queue {queue!r}"
            raise UnknownLimiterError(f"no stored limiter named {name!r}{where} (a worker "
                                      "stores the declared ones when it starts)")
        if len(found) > 1:
            queues = ", ".join(sorted(info.queue for info in found))
            raise InvalidRequestError(f"limiter {name!r} exists in several queues ({queues}); "
                                      "say which with queue=")
        return found[0]


def declared(app: Conveyor) -> list[tuple[str, str, dict[str, Any]]]:
    return [(queue, name, limit.to_json())
            for queue, name, limit in app.flow.stored_for_tasks(app.tasks)]


async def store_declared(app: Conveyor) -> None:
    """A worker start hook: write the app's declared limits to the backend, on a connection
    of its own. Raising stops the worker: it would otherwise run jobs unlimited."""
    limits = declared(app)
    if not limits:
        return
    if not app.backend.capabilities.flow_control:
        raise ConfigurationError(f"{app.url.split(':', 1)[0]} backend: flow control "
                                 "(rate limits, concurrency caps) is not supported yet")
    backend = backend_for(app.url)
    try:
        await backend.open()
        await backend.declare_limits(limits)
    finally:
        await backend.close()
    log.info("flow control: %d limiter(s) stored", len(limits))
