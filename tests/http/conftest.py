"""Fixtures for the HTTP API tests: the test app (tests/http/http_app.py) on a fresh store
of each backend, the ASGI app with an admin and a read token, an httpx client on it, and
real `conveyor serve` / `conveyor worker` processes for the load and SSE tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from conveyor import Conveyor
from conveyor.http import HttpSettings, Scope, create_app
from tests.helpers import ROOT
from tests.http import http_app
from tests.redis_server import (  # noqa: F401 (fixtures)
    free_port,
    fresh_redis,
    redis_server,
    unique_url,
)

# this tree's code first: the venv's editable install may point at another checkout
PYTHONPATH = f"{ROOT / 'src'}{os.pathsep}{ROOT}"
ADMIN = "admin-token-for-tests"
READ = "read-token-for-tests"
HTTP_APP = "tests.http.http_app:app"
BODY_LIMIT = 64 * 1024


def sqlite_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/http.db"


def redis_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return unique_url(request.getfixturevalue("redis_server"))


@pytest.fixture(params=[sqlite_url, redis_url], ids=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    factory: Callable[[pytest.FixtureRequest, Path], str] = request.param
    return factory(request, tmp_path)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/http.db"


@pytest.fixture
async def conveyor_app(store_url: str, monkeypatch: pytest.MonkeyPatch
                       ) -> AsyncIterator[Conveyor]:
    monkeypatch.setenv("CONVEYOR_URL", store_url)
    http_app.app.use(store_url)
    await http_app.app.aopen()
    yield http_app.app
    await http_app.app.aclose()


def settings(**overrides: object) -> HttpSettings:
    values: dict[str, object] = {"tokens": {ADMIN: Scope.ADMIN, READ: Scope.READ},
                                 "max_body_bytes": BODY_LIMIT}
    values.update(overrides)
    return HttpSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def api(conveyor_app: Conveyor) -> FastAPI:
    return create_app(conveyor_app, settings())


@pytest.fixture
async def client(api: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(api), base_url="http://api",
                                 headers={"Authorization": f"Bearer {ADMIN}"}) as c:
        yield c


class ServeProcess:
    """A real `conveyor serve` process on a free port."""

    def __init__(self, url: str, log: Path, *args: str, env: dict[str, str] | None = None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        environ = {**os.environ, "CONVEYOR_URL": url, "PYTHONPATH": PYTHONPATH,
                   "CONVEYOR_TOKENS": f"admin:{ADMIN},read:{READ}", **(env or {})}
        self.log = log
        with open(log, "w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "conveyor", "serve", HTTP_APP, "--port", str(self.port),
                 *args], env=environ, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60  # imports take long on a busy 2-core machine
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"conveyor serve exited:\n{log.read_text()}")
            try:
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"conveyor serve did not answer:\n{log.read_text()}")
            time.sleep(0.05)

    def stop(self, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return -9


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., ServeProcess]]:
    started: list[ServeProcess] = []

    def start(url: str, *args: str, env: dict[str, str] | None = None) -> ServeProcess:
        server = ServeProcess(url, tmp_path / f"serve{len(started)}.log", *args, env=env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
