"""Fixtures for the Redis-specific tests: real redis-server processes (tests/redis_server.py)."""

from tests.redis_server import fresh_redis, redis_cluster, redis_server

__all__ = ["fresh_redis", "redis_cluster", "redis_server"]
