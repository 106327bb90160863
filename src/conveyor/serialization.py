"""JSON in and out. Arguments, results, progress and events are JSON; nothing is pickled."""

from __future__ import annotations

from typing import Any

import orjson

from .errors import ArgumentsError

DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def loads(text: str | bytes | None) -> Any:
    return None if text is None else orjson.loads(text)


def dumps_checked(value: Any, what: str) -> str:
    """Encode `value`, turning "not JSON" into a clear error that names `what`."""
    try:
        return orjson.dumps(value).decode()
    except TypeError as exc:
        raise ArgumentsError(f"{what} must be JSON-serializable: {exc}") from None
