"""The Redis backend (``redis://``, ``rediss://``): production and scale-out, Redis Cluster
included. The keyspace is described in `keyspace`, the transitions are the Lua scripts in
``lua/``, one file each."""

from .backend import RedisBackend

__all__ = ["RedisBackend"]
