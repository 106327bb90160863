"""The Lua scripts (one per transition, in ``lua/``) and the way they are called.

Each script is read once with its ``--- @include "name"`` lines replaced by
``lua/includes/name.lua`` (an include may include others; each is spliced once, where
first named), and called by SHA (EVALSHA). A server that does not know the
SHA (restarted, flushed, or a Cluster node that never saw it) answers NOSCRIPT: that call
alone is repeated with EVAL, which runs the script and caches it there. NOSCRIPT means the
script did not run, so the repeat cannot apply a transition twice.

Calls go out in batches (one pipeline, one round trip; on Cluster one per node, sent in
parallel). Redis errors become conveyor's BackendError / BackendUnavailableError; a batch
that left this process and then got no answer (a timeout, a connection lost while
waiting) is `OutcomeUnknown`: Redis may have run it, or may run it later (a frozen
server runs what it received when it thaws). A refused connection is plainly unavailable.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import hiredis
import redis.asyncio

import redis
from redis import exceptions as rx

from ...errors import BackendError, BackendUnavailableError
from .connect import SENDING

_INCLUDE = re.compile(r'^--- @include "([a-z_]+)"$', re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Script:
    name: str
    text: str
    sha: str


def _expand(text: str, includes: Any, spliced: set[str]) -> str:
    """`text` with its includes spliced in, each once (where first named)."""
    def splice(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in spliced:
            return ""
        spliced.add(name)
        return _expand(includes.joinpath(f"{name}.lua").read_text(), includes, spliced)

    return _INCLUDE.sub(splice, text)


def _load() -> dict[str, Script]:
    lua = resources.files(__package__).joinpath("lua")
    includes = lua.joinpath("includes")
    scripts: dict[str, Script] = {}
    for entry in lua.iterdir():
        if not entry.name.endswith(".lua"):
            continue

        text = _expand(entry.read_text(), includes, set())
        name = entry.name[:-4]
        scripts[name] = Script(name, text, hashlib.sha1(text.encode()).hexdigest())
    return scripts


SCRIPTS = _load()


class Batch:
    """Commands and script calls to send in one pipeline; results come back in order."""

    __slots__ = ("commands", "scripts")

    def __init__(self) -> None:
        self.commands: list[tuple[Any, ...]] = []
        self.scripts: list[Script | None] = []

    def __len__(self) -> int:
        return len(self.commands)

    def script(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> int:
        script = SCRIPTS[name]
        self.commands.append(("EVALSHA", script.sha, len(keys), *keys, *args))
        self.scripts.append(script)
        return len(self.commands) - 1

    def command(self, *args: Any) -> int:
        self.commands.append(args)
        self.scripts.append(None)
        return len(self.commands) - 1


class OutcomeUnknown(BackendUnavailableError):
    """A call reached Redis (or may have) and no answer came: it may have run."""


def backend_error(exc: Exception, sent: bool = False) -> BackendError:
    if isinstance(exc, rx.ConnectionError | rx.TimeoutError) and sent:
        return OutcomeUnknown(f"redis did not answer a call it may have run: {exc}")
    if isinstance(exc, rx.ConnectionError | rx.TimeoutError | rx.BusyLoadingError):
        return BackendUnavailableError(f"redis is unreachable: {exc}")
    return BackendError(f"redis error: {exc}")


async def run(client: Any, batch: Batch) -> list[Any]:
    """Send a batch; scripts unknown to the server are repeated with EVAL."""
    if not batch.commands:
        return []
    # Cluster connections cannot be marked (redis-py picks their class): any call on one
    # that fails without an answer counts as one that may have run
    marker = [isinstance(client, redis.asyncio.RedisCluster)]
    token = SENDING.set(marker)
    try:
        return await _run(client, batch, marker)
    finally:
        SENDING.reset(token)


async def _run(client: Any, batch: Batch, marker: list[bool]) -> list[Any]:
    try:
        if len(batch.commands) == 1:
            results = [await _one(client, batch.commands[0])]
        else:
            pipe = client.pipeline(transaction=False)
            for command in batch.commands:
                pipe.execute_command(*command)
            results = await pipe.execute(raise_on_error=False)
    except rx.RedisError as exc:
        raise backend_error(exc, marker[0]) from exc
    return await complete(client, batch, results)


async def complete(client: Any, batch: Batch, results: list[Any]) -> list[Any]:
    """The answers to a batch sent by other means: calls answered NOSCRIPT are repeated
    (with EVAL, on `client`), and the first error answer raises."""
    again = _unknown_scripts(batch, results)
    if again is not None:
        _fill(results, again, await run(client, again[1]))
    return _checked(results)


def run_blocking(client: Any, batch: Batch) -> list[Any]:
    """`run` with a synchronous redis-py client, for the app's sync API."""
    if not batch.commands:
        return []
    marker = [isinstance(client, redis.RedisCluster)]
    token = SENDING.set(marker)
    try:
        return _run_blocking(client, batch, marker)
    finally:
        SENDING.reset(token)


def _run_blocking(client: Any, batch: Batch, marker: list[bool]) -> list[Any]:
    try:
        if len(batch.commands) == 1:
            command = batch.commands[0]
            try:
                if command[0] == "EVALSHA" and isinstance(client, redis.Redis):
                    results = [_script_blocking(client, command)]
                else:
                    results = [client.execute_command(*command)]
            except rx.NoScriptError as exc:
                results = [exc]
        else:
            pipe = client.pipeline(transaction=False)
            for command in batch.commands:
                pipe.execute_command(*command)
            results = pipe.execute(raise_on_error=False)
        again = _unknown_scripts(batch, results)
        if again is not None:
            _fill(results, again, _run_blocking(client, again[1], marker))
    except rx.RedisError as exc:
        raise backend_error(exc, marker[0]) from exc
    return _checked(results)


def _unknown_scripts(batch: Batch, results: list[Any]) -> tuple[list[int], Batch] | None:
    """The calls the server answered NOSCRIPT, as EVALs of the script's text."""
    missing = [i for i, r in enumerate(results) if isinstance(r, rx.NoScriptError)]
    if not missing:
        return None
    again = Batch()
    for i in missing:
        script = batch.scripts[i]
        assert script is not None
        again.commands.append(("EVAL", script.text, *batch.commands[i][2:]))
        again.scripts.append(None)
    return missing, again


def _fill(results: list[Any], again: tuple[list[int], Batch], answers: list[Any]) -> None:
    for i, result in zip(again[0], answers, strict=True):
        results[i] = result


def _checked(results: list[Any]) -> list[Any]:
    for result in results:
        if isinstance(result, Exception):
            raise backend_error(result) from result
    return list(results)


async def _one(client: Any, command: tuple[Any, ...]) -> Any:
    try:
        if command[0] == "EVALSHA" and isinstance(client, redis.asyncio.Redis):
            return await _script(client, command)
        return await client.execute_command(*command)
    except rx.NoScriptError as exc:
        return exc


# One script call on one server goes to a pooled connection directly. redis-py's command
# layer (observability hooks, reply callbacks, none of which a script's reply needs) costs
# more client CPU than the call itself: a sync PING ~60-120 us through it, ~35 us without.
# The retry on a dropped connection is the client's own, as in redis-py.

async def _script(client: redis.asyncio.Redis, command: tuple[Any, ...]) -> Any:
    pool: Any = client.connection_pool
    conn = await pool.get_connection()
    packed = [hiredis.pack_command(command)]

    async def send() -> Any:
        await conn.send_packed_command(packed)
        return await conn.read_response()

    async def drop(_: Exception) -> None:
        await conn.disconnect()

    try:
        return await conn.retry.call_with_retry(send, drop)
    finally:
        await pool.release(conn)


def _script_blocking(client: redis.Redis, command: tuple[Any, ...]) -> Any:
    pool: Any = client.connection_pool
    conn = pool.get_connection()
    packed = [hiredis.pack_command(command)]

    def send() -> Any:
        conn.send_packed_command(packed)
        return conn.read_response()

    try:
        return conn.retry.call_with_retry(send, lambda _: conn.disconnect())
    finally:
        pool.release(conn)
