"""Storage engines behind the one contract in `base`; pick one by URL scheme."""

from __future__ import annotations

import importlib

from ..errors import ConfigurationError, MissingExtraError
from .base import Backend

# scheme -> "module:Class", imported only when used so optional drivers stay optional
ENGINES = {
    "sqlite": "conveyor.backends.sqlite:SqliteBackend",
    "redis": "conveyor.backends.redis:RedisBackend",
    "rediss": "conveyor.backends.redis:RedisBackend",
}


def backend_for(url: str) -> Backend:
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    target = ENGINES.get(scheme)
    if target is None:
        known = ", ".join(f"{s}://" for s in ENGINES)
        raise ConfigurationError(f"unsupported backend URL {url!r} (use one of {known})")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except MissingExtraError:
        raise
    except ImportError as exc:
        raise ConfigurationError(f"the {scheme} backend is not available: {exc}") from None
    backend: Backend = getattr(module, class_name)(url)
    return backend
