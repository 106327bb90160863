"""Fixtures for the dashboard tests.

In-process: the dashboard's ASGI app (inside `create_app`, or mounted at a prefix of a
user's app) on a fresh SQLite store, with an httpx client that signs in like a browser.

End to end: a real `conveyor serve` and a real `conveyor worker` on each backend, and
Debian's chromium driven by Playwright (never `playwright install`: the browser is the
system's). Screenshots go to test-artifacts/dashboard/.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from conveyor import Conveyor
from conveyor.http import HttpSettings, create_app
from tests.conformance.conftest import backend, backend_url  # noqa: F401 (fixtures)
from tests.dashboard import tasks
from tests.helpers import ROOT
from tests.redis_server import free_port, redis_server, unique_url  # noqa: F401 (fixture)

# this tree's code first: the venv's editable install may point at another checkout
PYTHONPATH = f"{ROOT / 'src'}{os.pathsep}{ROOT}"
ADMIN_TOKEN = "dash-admin-token"
READ_TOKEN = "dash-read-token"
USERS = "ana:admin:ana-password,rui:read:rui-password"
SECRET = "dashboard-tests-secret"
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
VENDOR = ROOT / "src" / "conveyor" / "dashboard" / "static" / "vendor"
QUEUES = "default,emails,billing,reports"


def settings(**overrides: Any) -> HttpSettings:
    return HttpSettings.from_env({
        "CONVEYOR_TOKENS": f"admin:{ADMIN_TOKEN},read:{READ_TOKEN}",
        "CONVEYOR_USERS": USERS, "CONVEYOR_SECRET_KEY": SECRET}, **overrides)


# -- in process -----------------------------------------------------------------------------
@pytest.fixture
async def conveyor_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                       ) -> AsyncIterator[Conveyor]:
    url = f"sqlite:///{tmp_path}/dashboard.db"
    monkeypatch.setenv("CONVEYOR_URL", url)
    tasks.app.use(url)
    await tasks.app.aopen()
    yield tasks.app
    await tasks.app.aclose()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


class Browserish:
    """An httpx client that keeps cookies and knows the page's CSRF token, like a tab."""

    def __init__(self, client: httpx.AsyncClient, base: str) -> None:
        self.client = client
        self.base = base
        self.csrf = ""

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        response = await self.client.get(self.base + path, **kw)
        if 'name="csrf"' in response.text:
            self.csrf = csrf_of(response.text)
        return response

    async def post(self, path: str, data: dict[str, Any] | None = None,
                   csrf: str | None = None, **kw: Any) -> httpx.Response:
        form = {"csrf": self.csrf if csrf is None else csrf, **(data or {})}
        return await self.client.post(self.base + path, data=form, **kw)

    async def login(self, name: str | None = None, password: str | None = None,
                    token: str | None = None) -> httpx.Response:
        await self.get("/login")
        data = {"token": token} if token else {"name": name, "password": password}
        response = await self.post("/login", {**data, "next": "/"})
        await self.get("/")
        return response


@pytest.fixture
async def open_client(conveyor_app: Conveyor) -> AsyncIterator[Callable[..., Browserish]]:
    """A fresh tab on the dashboard, mounted by `create_app` or at a user's prefix."""
    clients: list[httpx.AsyncClient] = []

    def make(prefix: str = "/dashboard", **overrides: Any) -> Browserish:
        config = settings(**overrides)
        api = create_app(conveyor_app, config)
        if prefix != "/dashboard":
            from fastapi import FastAPI

            from conveyor.dashboard import create_dashboard
            outer = FastAPI()
            outer.mount(prefix, create_dashboard(conveyor_app, config, hub=api.state.hub))
            outer.mount("/", api)
            asgi: Any = outer
        else:
            asgi = api
        client = httpx.AsyncClient(transport=httpx.ASGITransport(asgi),
                                   base_url="http://dash.test", follow_redirects=False)
        clients.append(client)
        return Browserish(client, prefix)

    yield make
    for client in clients:
        await client.aclose()


# -- end to end -----------------------------------------------------------------------------
def sqlite_store(request: pytest.FixtureRequest, folder: Path) -> str:
    return f"sqlite:///{folder}/dashboard.db"


def redis_store(request: pytest.FixtureRequest, folder: Path) -> str:
    return unique_url(request.getfixturevalue("redis_server"))


class Process:
    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with open(log, "w") as out:
            self.proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=out,
                                         stderr=subprocess.STDOUT)

    def stop(self, timeout: float = 15) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Stack:
    """A served dashboard and a worker on one store."""

    backend: str
    url: str  # the store
    base: str  # http://127.0.0.1:PORT/dashboard
    folder: Path
    app: Conveyor

    def enqueue(self, task: str, **kwargs: Any) -> str:
        return self.app.enqueue(task, **kwargs).id


def _wait_healthy(base: str, proc: Process) -> None:
    deadline = time.monotonic() + 20
    while True:
        if proc.proc.poll() is not None:
            raise RuntimeError(f"the server exited:\n{proc.log.read_text()}")
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server did not answer:\n{proc.log.read_text()}")
        time.sleep(0.05)


@pytest.fixture(scope="module", params=[sqlite_store, redis_store], ids=["sqlite", "redis"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[Stack]:
    if not VENDOR.joinpath("htmx.min.js").exists():
        pytest.fail(f"the dashboard's front-end files are missing from {VENDOR}: "
                    "run src/conveyor/dashboard/frontend/build.sh (./scripts/test does)")
    folder = tmp_path_factory.mktemp("dashboard")
    url = request.param(request, folder)
    port = free_port()
    env = {**os.environ, "CONVEYOR_URL": url, "PYTHONPATH": PYTHONPATH,
           "CONVEYOR_TOKENS": f"admin:{ADMIN_TOKEN},read:{READ_TOKEN}",
           "CONVEYOR_USERS": USERS, "CONVEYOR_SECRET_KEY": SECRET}
    env.pop("CONVEYOR_OPEN", None)
    server = Process([sys.executable, "-m", "conveyor", "serve", "tests.dashboard.tasks:app",
                      "--host", "127.0.0.1", "--port", str(port)], env, folder / "serve.log")
    worker = Process([sys.executable, "-m", "conveyor", "worker", "tests.dashboard.tasks:app",
                      "-q", QUEUES, "-c", "5"], env, folder / "worker.log")
    try:
        _wait_healthy(f"http://127.0.0.1:{port}", server)
        tasks.app.use(url)
        yield Stack(request.param.__name__.split("_")[0], url,
                    f"http://127.0.0.1:{port}/dashboard", folder, tasks.app)
    finally:
        worker.stop()
        server.stop()
        tasks.app.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One chromium for a test module. Not for the session: Playwright's sync API keeps an
    event loop running on this thread while it lives, which async tests cannot share."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def shoot(page: Any, name: str, backend_name: str) -> None:
    """A full-page screenshot, wide as the page is and again in a phone-sized window."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    page.screenshot(path=str(ARTIFACTS / f"{backend_name}-{name}-wide.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(150)
    page.screenshot(path=str(ARTIFACTS / f"{backend_name}-{name}-narrow.png"), full_page=True)
    page.set_viewport_size(size)
