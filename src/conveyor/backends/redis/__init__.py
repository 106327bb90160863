"""The Redis backend (``redis://``, ``rediss://``): production and scale-out, Redis Cluster
included. The keyspace is described in `keyspace`, the transitions are the Lua scripts in
``lua/``, one file each."""

from ... import extras

try:
    from .backend import RedisBackend
except ModuleNotFoundError as exc:
    extras.missing("the redis backend", "redis", exc)

__all__ = ["RedisBackend"]
