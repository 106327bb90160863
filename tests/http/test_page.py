"""The example "Generate Report" page in a real headless Chromium (Debian's, driven by
Playwright), against a real uvicorn serving examples.web and a real worker running
examples.reports at high speed. Screenshots land in test-artifacts/."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import ROOT, WorkerProcess, wait_until
from tests.http.conftest import PYTHONPATH
from tests.http.wh_server import ServerProcess
from tests.redis_server import free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason="Debian chromium is not installed")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    url = f"sqlite:///{tmp_path_factory.mktemp('page')}/reports.db"
    speed = {"CONVEYOR_EXAMPLE_SPEED": "30"}  # a report takes about a second
    os.environ.update(speed)
    try:
        worker = WorkerProcess(url, "-c", "4", app="examples.reports:app")
    finally:
        del os.environ["CONVEYOR_EXAMPLE_SPEED"]
    try:
        with ServerProcess(url, "examples.web:web", open_mode=True, env=speed,
                           health="/api/healthz") as server:
            yield server
    finally:
        output = worker.stop()
    assert "Traceback" not in output, output


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 900, "height": 720})
    opened = context.new_page()
    yield opened
    context.close()


def shot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"page-{name}.png"
    page.screenshot(path=str(path), full_page=True, animations="disabled")
    return path


def report_jobs(site: ServerProcess) -> list[dict[str, Any]]:
    answer = httpx.get(f"{site.base}/api/v1/jobs", params={"task": "generate_report"})
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def spinning(page: Any) -> bool:
    return bool(page.locator("#status.running").count())


def test_four_clicks_make_one_job_with_live_progress_then_the_result(
        site: ServerProcess, page: Any) -> None:
    before = len(report_jobs(site))
    page.goto(site.base + "/")
    shot(page, "1-ready")
    page.fill("#user", "7")
    page.fill("#days", "90")
    for _ in range(4):
        page.click("#generate")
    page.wait_for_selector("#result", state="visible", timeout=30_000)
    shot(page, "3-result")

    assert page.text_content("#summary") is not None
    assert "user 7: score" in (page.text_content("#summary") or "")
    assert page.text_content("#period") == "90 days"
    assert page.eval_on_selector("#bar", "bar => bar.value") == 100
    assert page.text_content("#status") == "Done."
    assert not spinning(page)
    assert page.is_hidden("#error")

    log = page.evaluate("window.reportLog")
    accepted = [entry["value"] for entry in log if entry["kind"] == "accepted"]
    assert len(accepted) == 4 and len(set(accepted)) == 1  # four answers, one job
    assert page.text_content("#job-id") == accepted[0]
    assert page.text_content("#clicks") == "4 clicks, one job"
    shown = [entry["value"] for entry in log if entry["kind"] == "progress"]
    assert any(0 < p < 100 for p in shown), shown  # live progress reached the page
    assert shown == sorted(shown)

    jobs = report_jobs(site)
    assert len(jobs) == before + 1
    assert jobs[0]["id"] == accepted[0] and jobs[0]["state"] == "completed"

    page.click("#generate")  # a finished report: the next click is a new report
    page.wait_for_function("() => window.reportLog.filter(e => e.kind === 'accepted')"
                           ".length === 5")
    assert len(report_jobs(site)) == before + 2


def test_the_bar_draws_the_progress_events_of_the_stream(
        site: ServerProcess, page: Any) -> None:
    # A real report finishes within about a second; to look at the bar mid-way, this test
    # holds the stream at 45 % (the job itself is accepted by the real server).
    frames = (
        "retry: 60000\n\n"
        'id: 1\nevent: snapshot\ndata: {"state": "active", "done": false, '
        '"progress": {"percent": 25, "step": "billing"}}\n\n'
        'id: 2\nevent: progress\ndata: {"kind": "progress", '
        '"data": {"progress": {"percent": 45, "step": "usage"}}}\n\n'
        ": heartbeat\n\n")
    page.route("**/events", lambda route: route.fulfill(
        status=200, body=frames, headers={"content-type": "text/event-stream"}))
    page.goto(site.base + "/")
    page.click("#generate")
    page.wait_for_function("() => document.getElementById('bar').value === 45")
    shot(page, "2-progress")
    assert page.text_content("#percent") == "45%"
    assert page.text_content("#status") == "Generating your report… (usage)"
    assert spinning(page)
    assert page.is_hidden("#result") and page.is_hidden("#error")


def test_a_failing_report_shows_a_clear_message(site: ServerProcess, page: Any) -> None:
    page.goto(site.base + "/")
    page.fill("#days", "0")  # the task refuses it: NonRetryableError
    page.click("#generate")
    page.wait_for_selector("#error", state="visible", timeout=30_000)
    shot(page, "4-failed")
    assert page.text_content("#error-title") == "The report failed"
    assert "days must be positive" in (page.text_content("#error-message") or "")
    assert "after 1 attempt" in (page.text_content("#error-message") or "")
    assert page.is_hidden("#result")
    assert not spinning(page)


def test_a_report_that_does_not_finish_in_time_ends_in_a_message(
        site: ServerProcess, page: Any) -> None:
    assert httpx.post(f"{site.base}/api/v1/queues/reports/pause").status_code == 200
    try:
        page.goto(site.base + "/?timeout=2")
        page.click("#generate")
        page.wait_for_selector("#status.running")
        page.wait_for_selector("#error", state="visible", timeout=15_000)
        shot(page, "5-timeout")
    finally:
        httpx.post(f"{site.base}/api/v1/queues/reports/resume")
    assert page.text_content("#error-title") == "This is taking longer than expected"
    message = page.text_content("#error-message") or ""
    assert "still waiting after 2 s" in message
    assert not spinning(page)


def test_an_unreachable_server_ends_in_a_message(site: ServerProcess, page: Any) -> None:
    page.goto(site.base + "/")
    page.route("**/v1/tasks/**", lambda route: route.abort())
    page.click("#generate")
    page.wait_for_selector("#error", state="visible", timeout=15_000)
    shot(page, "6-unreachable")
    assert page.text_content("#error-title") == "Could not reach the server"
    assert not spinning(page)


def test_a_refused_event_stream_falls_back_to_polling(site: ServerProcess, page: Any) -> None:
    page.goto(site.base + "/")
    page.route("**/events", lambda route: route.fulfill(status=503, body="no streams today"))
    page.click("#generate")
    page.wait_for_selector("#result", state="visible", timeout=30_000)
    log = page.evaluate("window.reportLog")
    assert any(entry["value"] == "stream refused; polling" for entry in log)
    assert "score" in (page.text_content("#summary") or "")
    assert not spinning(page)


def _two_free_ports() -> int:
    for _ in range(50):
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two adjacent free ports")


def test_conveyor_dev_serves_the_page_beside_the_api(tmp_path: Path, page: Any) -> None:
    api_port = _two_free_ports()
    env = {**os.environ, "CONVEYOR_URL": f"sqlite:///{tmp_path}/dev.db",
           "CONVEYOR_API_PORT": str(api_port), "CONVEYOR_EXAMPLE_SPEED": "30",
           "PYTHONPATH": PYTHONPATH}
    env.pop("CONVEYOR_APP", None)
    with open(tmp_path / "dev.log", "w") as log:
        dev = subprocess.Popen([sys.executable, "-m", "conveyor", "dev"], env=env, cwd=ROOT,
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{api_port + 1}"
        wait_until(lambda: _answers(base + "/api/healthz"), 30, "conveyor dev's page")
        page.goto(base + "/")
        page.click("#generate")
        page.wait_for_selector("#result", state="visible", timeout=30_000)
        assert "user 1: score" in (page.text_content("#summary") or "")
    finally:
        dev.send_signal(signal.SIGINT)
        code = dev.wait(30)
    output = (tmp_path / "dev.log").read_text()
    assert code == 0, output
    assert f"page     {base}/" in output  # the dev panel says where the page is
    assert "Traceback" not in output


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
