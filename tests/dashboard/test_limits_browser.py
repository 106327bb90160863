"""The Limits page and a held job's page in Debian's chromium against a real `conveyor
serve` (every backend with flow control): the job page says which limit holds the job,
the Limits page shows use and blocked jobs per key, an admin changes and resets a limit
through its form, and a read-only user sees no form."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from conveyor import Conveyor
from tests import flow_app
from tests.dashboard.conftest import (
    ADMIN_TOKEN,
    PYTHONPATH,
    READ_TOKEN,
    SECRET,
    USERS,
    Process,
    _wait_healthy,
    redis_store,
    shoot,
    sqlite_store,
)
from tests.dashboard.test_browser import LIVE, sign_in
from tests.redis_server import free_port

pytest.importorskip("playwright")
from playwright.sync_api import expect


@pytest.fixture(scope="module", params=[sqlite_store, redis_store], ids=["sqlite", "redis"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[str, str, flow_app.Held]]:
    """(backend name, dashboard base URL, the held jobs) with the limits stored."""
    folder = tmp_path_factory.mktemp("limits")
    url = request.param(request, folder)
    probe = Conveyor(url)
    probe.open()
    supported = probe.backend.capabilities.flow_control
    probe.close()
    if not supported:
        pytest.skip("backend without flow control")
    flow_app.app.use(url)

    async def hold() -> flow_app.Held:
        try:
            return await flow_app.hold_one(flow_app.app)
        finally:
            await flow_app.app.aclose()
    with concurrent.futures.ThreadPoolExecutor(1) as thread:  # Playwright owns this loop
        held = thread.submit(lambda: asyncio.run(hold())).result()
    port = free_port()
    env = {**os.environ, "CONVEYOR_URL": url, "PYTHONPATH": PYTHONPATH,
           "CONVEYOR_TOKENS": f"admin:{ADMIN_TOKEN},read:{READ_TOKEN}",
           "CONVEYOR_USERS": USERS, "CONVEYOR_SECRET_KEY": SECRET}
    env.pop("CONVEYOR_OPEN", None)
    server = Process([sys.executable, "-m", "conveyor", "serve", "tests.flow_app:app",
                      "--host", "127.0.0.1", "--port", str(port)], env, folder / "serve.log")
    try:
        _wait_healthy(f"http://127.0.0.1:{port}", server)
        yield request.param.__name__.split("_")[0], f"http://127.0.0.1:{port}/dashboard", held
    finally:
        server.stop()
        flow_app.app.close()


def test_limits_and_why_a_job_waits_in_the_browser(
        browser: Any, served: tuple[str, str, flow_app.Held]) -> None:
    backend, base, held = served
    page = sign_in(browser, base)
    page.goto(f"{base}/jobs/{held.blocked}")
    why = page.locator(".waiting-reasons")
    expect(why).to_contain_text("Why it is not running")
    expect(why).to_contain_text("concurrency full (task:ask key 'acme', 1/1)")
    shoot(page, "job-waiting", backend)

    page.click("nav >> text=Limits")
    ask = page.locator('section[data-limit="llm/task:ask"]')
    expect(ask.locator(".rate")).to_have_text("100/m")
    expect(ask.locator(".blocked-total")).to_have_text("1")
    expect(ask.locator('tr[data-key="acme"] td').nth(3)).to_have_text("1")
    expect(ask.locator('tr[data-key="globex"] td').nth(1)).to_have_text("1")
    shoot(page, "limits", backend)

    ask.locator("input[name=concurrency]").fill("2")
    ask.locator("button", has_text="Change").click()
    expect(page.locator(".flash")).to_contain_text("Changed task:ask of queue llm")
    ask = page.locator('section[data-limit="llm/task:ask"]')
    expect(ask.locator(".concurrency")).to_have_text("2")
    expect(ask).to_contain_text("changed at runtime")
    page.goto(f"{base}/jobs/{held.blocked}")  # a free slot now: nothing holds it back
    expect(page.locator("[data-testid=job-id]")).to_have_text(held.blocked, timeout=LIVE)
    expect(page.locator(".waiting-reasons")).to_have_count(0)

    page.goto(f"{base}/limits")
    page.locator('section[data-limit="llm/task:ask"] button', has_text="Reset").click()
    expect(page.locator(".flash")).to_contain_text("Reset task:ask of queue llm")
    expect(page.locator('section[data-limit="llm/task:ask"] .concurrency')).to_have_text("1")

    reader = sign_in(browser, base, user="rui", password="rui-password")
    reader.goto(f"{base}/limits")
    expect(reader.locator('section[data-limit="llm/task:ask"] .rate')).to_have_text("100/m")
    expect(reader.locator("section.limit form")).to_have_count(0)
