"""The conformance suite runs every test against every backend in BACKENDS.

A backend joins by adding a factory: given pytest's `request` and a temp dir, return the
URL of a fresh, empty store on a real server. Tests skip by capability, never by name.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from conveyor.backends import backend_for
from conveyor.backends.base import Backend, NewJob
from conveyor.ids import new_job_id
from tests.redis_server import redis_server, unique_url  # noqa: F401 (a session fixture)


def sqlite_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/conformance.db"


def redis_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    # one redis-server per session; a key prefix of its own makes each test's store empty
    return unique_url(request.getfixturevalue("redis_server"))


# (id, factory) pairs; other backends append theirs here.
BACKENDS: list[tuple[str, Callable[[pytest.FixtureRequest, Path], str]]] = [
    ("sqlite", sqlite_url),
    ("redis", redis_url),
]


@pytest.fixture(params=[factory for _, factory in BACKENDS], ids=[name for name, _ in BACKENDS])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    factory: Callable[[pytest.FixtureRequest, Path], str] = request.param
    return factory(request, tmp_path)


@pytest.fixture
async def backend(backend_url: str) -> AsyncIterator[Backend]:
    b = backend_for(backend_url)
    await b.open()
    try:
        yield b
    finally:
        await b.close()


def new_job(queue: str = "q", **fields: Any) -> NewJob:
    """A job to enqueue, with test defaults."""
    fields.setdefault("id", new_job_id())
    fields.setdefault("task", "t")
    fields.setdefault("args_json", "[]")
    fields.setdefault("kwargs_json", f'{{"n": {uuid.uuid4().int % 1000}}}')
    return NewJob(queue=queue, **fields)
