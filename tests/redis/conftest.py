"""Fixtures for the Redis-specific tests: real redis-server processes (tests/redis_server.py),
a backend on a store of its own (a key prefix) on the shared server, and a plain client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

import redis
from conveyor.backends.redis import RedisBackend
from tests.redis_server import RedisServer, fresh_redis, redis_cluster, redis_server, unique_url

__all__ = ["backend", "fresh_redis", "raw", "redis_cluster", "redis_server", "url"]


@pytest.fixture
def url(redis_server: RedisServer) -> str:
    return unique_url(redis_server)


@pytest.fixture
async def backend(url: str) -> AsyncIterator[RedisBackend]:
    b = RedisBackend(url)
    await b.open()
    try:
        yield b
    finally:
        await b.close()


@pytest.fixture
def raw(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis(port=redis_server.port, decode_responses=True)
    try:
        yield client
    finally:
        client.close()
