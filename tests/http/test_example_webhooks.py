"""The example app's webhooks work as `conveyor dev` runs it, with no set-up: a job
enqueued over the API with ``options.webhook`` pointing at the example page's /hooks is
delivered there by a real worker, signed with a secret the page verifies."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from asyncio.subprocess import Process
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import pytest
from examples import reports, web

from conveyor.http import HttpSettings
from conveyor.http.serve import bind
from tests.helpers import ROOT
from tests.http.conftest import PYTHONPATH
from tests.redis_server import free_port


@pytest.fixture
def worker_log(tmp_path: Path) -> Iterator[BinaryIO]:
    with open(tmp_path / "worker.log", "wb") as out:
        yield out


async def wait_for_delivery(client: httpx.AsyncClient, url: str, worker: Process,
                            log: Path, timeout: float = 60) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        got: list[dict[str, Any]] = (await client.get(url)).json()
        if got:
            return got
        if worker.returncode is not None or time.monotonic() > deadline:
            pytest.fail(f"no webhook arrived; the worker said:\n{log.read_text()}")
        await asyncio.sleep(0.1)  # the delivery comes from another process


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_the_example_pages_receiver_gets_a_signed_webhook_under_dev_settings(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, worker_log: BinaryIO) -> None:
    url = f"sqlite:///{tmp_path}/example.db"
    for name in ("CONVEYOR_WEBHOOK_SECRETS", "CONVEYOR_WEBHOOK_ALLOW_PRIVATE"):
        monkeypatch.delenv(name, raising=False)  # what a newcomer has: nothing set
    reports.app.use(url)
    port = free_port()
    page = asyncio.ensure_future(web.serve_beside(
        reports.app, bind("127.0.0.1", port), HttpSettings(open=True)))
    env = {**os.environ, "CONVEYOR_URL": url, "PYTHONPATH": PYTHONPATH}
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "conveyor", "worker", "examples.reports:app", "-q",
        "emails,conveyor.webhooks", env=env, cwd=ROOT, stdout=worker_log, stderr=worker_log)
    log = Path(worker_log.name)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            accepted = await client.post("/api/v1/tasks/send_email/jobs", json={
                "kwargs": {"to": "ana@example.com"},
                "options": {"webhook": f"{base}/hooks"}})
            assert accepted.status_code == 202, accepted.text
            [delivery] = await wait_for_delivery(client, "/hooks", worker, log)
        assert delivery["verified"] is True
        assert delivery["payload"]["type"] == "job.completed"
        assert delivery["payload"]["data"]["id"] == accepted.json()["id"]
    finally:
        worker.terminate()
        await asyncio.wait_for(worker.wait(), 30)
        page.cancel()
        await asyncio.gather(page, return_exceptions=True)
        await reports.app.aclose()
