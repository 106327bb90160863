"""The flow page in Debian's chromium against a real `conveyor serve`, on every backend:
every job of a graph with its state and what it waits for, a link to each job, from a
job's page back to its flow, and the page following the flow live while a worker runs
it."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest

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
from tests.flows import flow_app as fa
from tests.helpers import WorkerProcess
from tests.redis_server import free_port

pytest.importorskip("playwright")
from playwright.sync_api import expect


@pytest.fixture(scope="module", params=[sqlite_store, redis_store], ids=["sqlite", "redis"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[str, str, list[str], str, str]]:
    """(backend name, dashboard base URL, the graph's job ids, its flow id, store URL)."""
    folder = tmp_path_factory.mktemp("flows")
    url = request.param(request, folder)
    fa.app.use(url)
    flow = fa.app.new_flow()
    a = flow.add(fa.number.prepare(1))
    b = flow.add(fa.add.prepare(2), after=[a], pass_result="previous")
    c = flow.add(fa.collect.prepare(), after=[a, b], on_failure="continue")
    flow.enqueue()
    fa.app.close()
    port = free_port()
    env = {**os.environ, "CONVEYOR_URL": url, "PYTHONPATH": PYTHONPATH,
           "CONVEYOR_TOKENS": f"admin:{ADMIN_TOKEN},read:{READ_TOKEN}",
           "CONVEYOR_USERS": USERS, "CONVEYOR_SECRET_KEY": SECRET, "FLOW_LEDGER": "/dev/null"}
    env.pop("CONVEYOR_OPEN", None)
    server = Process([sys.executable, "-m", "conveyor", "serve", "tests.flows.flow_app:app",
                      "--host", "127.0.0.1", "--port", str(port)], env, folder / "serve.log")
    try:
        _wait_healthy(f"http://127.0.0.1:{port}", server)
        yield (request.param.__name__.split("_")[0], f"http://127.0.0.1:{port}/dashboard",
               [a.id, b.id, c.id], flow.id, url)
    finally:
        server.stop()


def test_a_flow_and_its_jobs_in_the_browser(
        browser: Any, served: tuple[str, str, list[str], str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOW_LEDGER", os.devnull)  # for the worker started below
    backend, base, ids, flow_id, url = served
    page = sign_in(browser, base, user="rui", password="rui-password")
    page.goto(f"{base}/flows/{flow_id}")
    rows = page.locator("table.flow-jobs tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(0).locator(".badge")).to_have_text("waiting")
    expect(rows.nth(2).locator(".badge")).to_have_text("waiting-children")
    expect(rows.nth(2)).to_contain_text("2 of 2 dependencies left")
    expect(rows.nth(2)).to_contain_text("(continue)")
    badge = rows.nth(2).locator(".badge")
    assert badge.evaluate("e => getComputedStyle(e).backgroundColor") != "rgba(0, 0, 0, 0)"
    shoot(page, "flow", backend)

    rows.nth(1).locator("td").first.locator("a").click()
    expect(page.locator("[data-testid=job-id]")).to_have_text(ids[1])
    expect(page.locator(".waiting-reasons")).to_contain_text("1 of 1 dependencies left")
    page.locator("a.flow-link").click()
    expect(page.locator("table.flow-jobs tbody tr")).to_have_count(3)

    worker = WorkerProcess(url, app="tests.flows.flow_app:app")  # live: it runs
    try:
        expect(page.locator("#flow-state .badge")).to_have_text("completed", timeout=LIVE)
        expect(page.locator("table.flow-jobs tbody .badge")).to_have_text(
            ["completed"] * 3)
    finally:
        worker.stop()
