"""Connecting to Redis or Redis Cluster, and checking that it keeps what it accepts.

URL: ``redis://[[user]:password@]host[:port][/db][?prefix=NAME&events_max_len=N]`` or
``rediss://`` for TLS; other query parameters go to redis-py unchanged. A server with
``cluster_enabled:1`` is used through the Cluster client (one URL node is enough).

Two clients per backend instance, with deliberate timeouts:

- commands: RESP2 with hiredis (the cheapest replies to decode), ``socket_timeout`` 10 s
  (every script is bounded, so a reply that takes longer means a lost server), and a
  retry on a dropped connection only (a stale pooled connection after a restart);
- blocking (wake-ups): no socket timeout, since BLPOP waits by design; the caller bounds
  each wait with its own deadline and TCP keepalive notices a dead peer.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from redis.asyncio import Redis, RedisCluster
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from redis import exceptions as rx

from ...errors import ConfigurationError

log = logging.getLogger("conveyor.backends.redis")

COMMAND_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5.0
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


async def connect(settings: Settings, check: bool = True) -> tuple[Any, Any, bool]:
    """(command client, blocking client, is_cluster); `check`: warn about durability."""
    probe = Redis.from_url(settings.url, **_options(False))
    try:
        info = await probe.info("cluster")
        cluster = bool(info.get("cluster_enabled"))
        if check:
            await check_durability(probe)
    except BaseException:
        await probe.aclose()
        raise
    if not cluster:
        return probe, Redis.from_url(settings.url, **_options(True)), False
    await probe.aclose()
    client = RedisCluster.from_url(settings.url, **_options(False))
    blocking = RedisCluster.from_url(settings.url, **_options(True))
    await client.initialize()
    return client, blocking, True


async def check_durability(client: Redis) -> None:
    """Warn when Redis may drop accepted jobs: eviction, or no persistence at all."""
    try:
        memory = await client.info("memory")
        persistence = await client.info("persistence")
    except rx.ResponseError as exc:  # INFO renamed or restricted: say so, carry on
        log.warning("could not check redis durability settings: %s", exc)
        return
    policy = memory.get("maxmemory_policy")
    if policy is not None and policy != "noeviction":
        log.warning("redis maxmemory-policy is %r: under memory pressure redis will delete "
                    "keys, including jobs. Set maxmemory-policy noeviction for conveyor.",
                    policy)
    aof = bool(persistence.get("aof_enabled"))
    rdb = False
    try:
        save = (await client.config_get("save")).get("save", "")
        rdb = bool(str(save).strip())
    except rx.ResponseError:
        rdb = True  # CONFIG is disabled (managed redis): assume the provider snapshots
    if not aof and not rdb:
        log.warning("redis has neither AOF nor RDB persistence: a restart of redis loses "
                    "every job. Turn on appendonly yes (appendfsync everysec or always).")
