"""The optional parts of the package and the extra that installs each one's dependencies.

The core (SQLite backend, worker, CLI) needs none of them. A module of an optional part
imports its third-party dependencies under a guard that turns a missing one into
`MissingExtraError`, a message naming the extra to install, instead of a bare
``No module named 'fastapi'``::

    try:
        import httpx
    except ModuleNotFoundError as exc:
        extras.missing("conveyor.client", "client", exc)
"""

from __future__ import annotations

from typing import NoReturn

from .errors import MissingExtraError

# extra -> the top-level modules it installs (pyproject.toml's [project.optional-dependencies])
MODULES: dict[str, frozenset[str]] = {
    "redis": frozenset({"redis", "hiredis"}),
    "server": frozenset(
        {"fastapi", "starlette", "uvicorn", "jinja2", "markupsafe", "prometheus_client",
         "multipart", "python_multipart", "httpx", "itsdangerous", "argon2"}
    ),
    "client": frozenset({"httpx"}),
    "otel": frozenset({"opentelemetry"}),
}


def missing(part: str, extra: str, error: ModuleNotFoundError) -> NoReturn:
    """Re-raise `error` as `MissingExtraError` when `extra` installs the missing module."""
    name = (error.name or "").partition(".")[0]
    if name in MODULES[extra]:
        raise MissingExtraError(part, extra, name) from error
    raise error
