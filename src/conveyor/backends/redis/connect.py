"""Connecting to Redis or Redis Cluster, and checking that it keeps what it accepts.

URL: ``redis://[[user]:password@]host[:port][/db][?prefix=NAME&events_max_len=N]`` or
``rediss://`` for TLS; other query parameters go to redis-py unchanged. A server with
``cluster_enabled:1`` is used through the Cluster client (one URL node is enough).

Two clients per backend instance, with deliberate timeouts:

- commands: RESP2 with hiredis (the cheapest replies to decode), ``socket_timeout`` 10 s
  (every script is bounded, so a reply that takes longer means a lost server), and a
  retry on a dropped connection only (a stale pooled connection after a restart, a
  ``CLIENT KILL``). A retry re-sends a call whose reply may have been lost after it ran,
  so every call must be safe to repeat;
- blocking (wake-ups): no socket timeout, since BLPOP waits by design; the caller bounds
  each wait with its own deadline and TCP keepalive notices a dead peer. No retry: a
  repeated BLPOP could swallow a second wake-up token.

On one server each client has a blocking pool of at most ``MAX_CONNECTIONS`` connections
(``?max_connections=N`` in the URL overrides it): more concurrent calls wait for a free
connection (up to ``POOL_TIMEOUT``) instead of failing with "Too many connections". The
Cluster client keeps a pool per node that cannot wait (past its max it fails the call
with MaxConnectionsError), so the command client lets at most ``MAX_CONNECTIONS`` calls
run at once, each using at most one connection per node, and the others wait their turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import hiredis
from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.asyncio.cluster import ClusterPipeline
from redis.asyncio.connection import AbstractConnection, Connection, SSLConnection
from redis.asyncio.retry import Retry  # not redis.retry.Retry: that one never retries a coroutine
from redis.backoff import ExponentialBackoff
from redis.retry import Retry as SyncRetry

import redis
from redis import exceptions as rx

from ...errors import ConfigurationError

log = logging.getLogger("conveyor.backends.redis")

COMMAND_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5.0
MAX_CONNECTIONS = 50  # per client; Redis runs one command at a time, more do not help
POOL_TIMEOUT = COMMAND_TIMEOUT  # waiting longer for a free connection means trouble
DEFAULT_EVENTS_MAX_LEN = 1_000_000
_PREFIX = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


@dataclass(frozen=True, slots=True)
class Settings:
    url: str  # for redis-py, without conveyor's own parameters
    prefix: str
    events_max_len: int


def parse_url(url: str) -> Settings:
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ConfigurationError(f"not a redis URL: {url!r}")
    if not parts.hostname:
        raise ConfigurationError(f"bad redis URL {url!r}: no host")
    params = dict(parse_qsl(parts.query))
    prefix = params.pop("prefix", "conveyor")
    if not _PREFIX.match(prefix):
        raise ConfigurationError(
            f"bad redis key prefix {prefix!r}: 1-64 letters, digits, '-', '_' or '.'")
    try:
        events_max_len = int(params.pop("events_max_len", DEFAULT_EVENTS_MAX_LEN))
    except ValueError:
        raise ConfigurationError("events_max_len must be an integer") from None
    if events_max_len < 1000:
        raise ConfigurationError("events_max_len must be at least 1000")
    rest = urlunsplit(parts._replace(query=urlencode(params)))
    return Settings(rest, prefix, events_max_len)


def _options(blocking: bool) -> dict[str, Any]:
    return {
        "decode_responses": True,
        "protocol": 2,
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_timeout": None if blocking else COMMAND_TIMEOUT,
        "socket_keepalive": True,
        "retry": Retry(ExponentialBackoff(cap=0.5, base=0.02), 0 if blocking else 3,
                       supported_errors=(rx.ConnectionError,)),
        "health_check_interval": 0 if blocking else 30,
    }


# While scripts.run sends a batch: [False] until a byte of it may have left this process
# (after the connection is made, so a refused connection is "not sent"). A call that then
# fails without its answer may have run: see scripts.OutcomeUnknown.
SENDING: ContextVar[list[bool] | None] = ContextVar("conveyor_redis_sending", default=None)


def _mark_sent() -> None:
    marker = SENDING.get()
    if marker is not None:
        marker[0] = True


class _MarksSent:
    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self.is_connected:  # type: ignore[attr-defined]
            await self.connect()  # type: ignore[attr-defined]
        _mark_sent()
        await super().send_packed_command(command, check_health)  # type: ignore[misc]


class _MarksSentBlocking:
    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self._sock:  # type: ignore[attr-defined]
            self.connect()  # type: ignore[attr-defined]
        _mark_sent()
        super().send_packed_command(command, check_health)  # type: ignore[misc]


class _HiredisPacking:
    """Commands packed by hiredis (C) instead of redis-py's asyncio packer (Python, a few
    string joins per argument): a worker's fetch carries hundreds of arguments."""

    def pack_command(self, *args: Any) -> list[bytes]:
        first = args[0]
        if (isinstance(first, str) and " " in first) or (
                isinstance(first, bytes) and b" " in first):
            args = (*first.split(), *args[1:])  # "CONFIG GET" from redis-py's own commands
        return [hiredis.pack_command(args)]


class _Connection(_MarksSent, _HiredisPacking, Connection):
    pass


class _SSLConnection(_MarksSent, _HiredisPacking, SSLConnection):
    pass


class _BlockingConnection(_MarksSentBlocking, redis.Connection):
    pass


class _BlockingSSLConnection(_MarksSentBlocking, redis.SSLConnection):
    pass


_FAST: dict[type[AbstractConnection], type[AbstractConnection]] = {
    Connection: _Connection, SSLConnection: _SSLConnection}
_MARKED: dict[type[redis.connection.AbstractConnection], type[Any]] = {
    redis.Connection: _BlockingConnection, redis.SSLConnection: _BlockingSSLConnection}


def _client(url: str, blocking: bool) -> Redis:
    pool = BlockingConnectionPool.from_url(
        url, max_connections=MAX_CONNECTIONS,
        # a wake-up wait is bounded by its caller's own deadline
        timeout=None if blocking else POOL_TIMEOUT, **_options(blocking))
    pool.connection_class = _FAST.get(pool.connection_class, pool.connection_class)
    return Redis.from_pool(pool)


async def connect(settings: Settings, check: bool = True) -> tuple[Any, Any, bool]:
    """(command client, blocking client, is_cluster); `check`: warn about durability."""
    probe = _client(settings.url, False)
    try:
        info = await probe.info("cluster")
        cluster = bool(info.get("cluster_enabled"))
        if check and _first_look(settings.url):
            await check_durability(probe)
    except BaseException:
        await probe.aclose()
        raise
    if not cluster:
        return probe, _client(settings.url, True), False
    await probe.aclose()
    client = BoundedCluster.from_url(settings.url, **_options(False))
    blocking = RedisCluster.from_url(settings.url, **_options(True))
    await client.initialize()
    return client, blocking, True


_IN_CALL: ContextVar[bool] = ContextVar("conveyor_redis_cluster_call", default=False)


class BoundedCluster(RedisCluster):
    """A Cluster client that runs at most `MAX_CONNECTIONS` calls (commands or pipelines)
    at a time: redis-py's per-node pools (100 connections) fail a call past their max
    instead of waiting for a free connection. A call made inside a call (a pipeline
    re-sending a redirected command) runs on its parent's turn, so it cannot deadlock."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls = asyncio.Semaphore(MAX_CONNECTIONS)

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        if _IN_CALL.get():
            yield
            return
        async with self.calls:
            token = _IN_CALL.set(True)
            try:
                yield
            finally:
                _IN_CALL.reset(token)

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self.turn():
            return await super().execute_command(*args, **kwargs)

    def pipeline(self, transaction: Any | None = None,
                 shard_hint: Any | None = None) -> ClusterPipeline:
        if shard_hint:
            return super().pipeline(transaction, shard_hint)  # raises, as redis-py does
        # redis-py's typing marks an attribute abstract that ClusterPipeline never sets
        return _BoundedPipeline(self, transaction)  # type: ignore[abstract]


class _BoundedPipeline(ClusterPipeline):
    cluster_client: BoundedCluster

    async def execute(self, raise_on_error: bool = True,
                      allow_redirections: bool = True) -> list[Any]:
        async with self.cluster_client.turn():
            return await super().execute(raise_on_error, allow_redirections)


_CHECKED: set[str] = set()  # the URLs whose durability this process has looked at


def _first_look(url: str) -> bool:
    """True once per URL and process: a worker's several backends (its own, its keeper's)
    warn once between them."""
    if url in _CHECKED:
        return False
    _CHECKED.add(url)
    return True


async def check_durability(client: Redis) -> None:
    """Warn when Redis may drop accepted jobs: eviction, or no persistence at all."""
    try:
        memory = await client.info("memory")
        persistence = await client.info("persistence")
    except rx.ResponseError as exc:  # INFO renamed or restricted: say so, carry on
        log.warning("could not check redis durability settings: %s", exc)
        return
    try:
        save: str | None = (await client.config_get("save")).get("save", "")
    except rx.ResponseError:
        save = None
    _warn_durability(memory, persistence, save)


def check_durability_blocking(client: redis.Redis) -> None:
    """`check_durability` with a synchronous client."""
    try:
        memory = client.info("memory")
        persistence = client.info("persistence")
    except rx.ResponseError as exc:
        log.warning("could not check redis durability settings: %s", exc)
        return
    try:
        save: str | None = client.config_get("save").get("save", "")
    except rx.ResponseError:
        save = None
    _warn_durability(memory, persistence, save)


def _warn_durability(memory: dict[str, Any], persistence: dict[str, Any],
                     save: str | None) -> None:
    """`save` is the server's RDB schedule, None when CONFIG is disabled (managed redis:
    assume the provider snapshots)."""
    policy = memory.get("maxmemory_policy")
    if policy is not None and policy != "noeviction":
        log.warning("redis maxmemory-policy is %r: under memory pressure redis will delete "
                    "keys, including jobs. Set maxmemory-policy noeviction for conveyor.",
                    policy)
    aof = bool(persistence.get("aof_enabled"))
    rdb = save is None or bool(str(save).strip())
    if not aof and not rdb:
        log.warning("redis has neither AOF nor RDB persistence: a restart of redis loses "
                    "every job. Turn on appendonly yes (appendfsync everysec or always).")


def connect_blocking(settings: Settings, check: bool = True) -> tuple[Any, bool]:
    """(synchronous command client, is_cluster), for the app's sync API: a call costs one
    round trip on the caller's thread, with no event loop in between. Thread-safe."""
    options = {**_options(False),
               "retry": SyncRetry(ExponentialBackoff(cap=0.5, base=0.02), 3,
                                  supported_errors=(rx.ConnectionError,))}
    pool = redis.BlockingConnectionPool.from_url(
        settings.url, max_connections=MAX_CONNECTIONS, timeout=POOL_TIMEOUT, **options)
    pool.connection_class = _MARKED.get(pool.connection_class, pool.connection_class)
    client = redis.Redis.from_pool(pool)
    try:
        cluster = bool(client.info("cluster").get("cluster_enabled"))
        if check and _first_look(settings.url):
            check_durability_blocking(client)
    except BaseException:
        client.close()
        raise
    if not cluster:
        return client, False
    client.close()
    return redis.RedisCluster.from_url(settings.url, **options), True
