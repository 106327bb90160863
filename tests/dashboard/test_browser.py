"""The dashboard end to end: Debian's chromium (driven by Playwright) against a real
`conveyor serve` and a real `conveyor worker`, on SQLite and on Redis.

Every page is saved as a screenshot, wide and narrow, under test-artifacts/dashboard/.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conveyor.jobs import JobState
from tests.dashboard.conftest import PYTHONPATH, SECRET, USERS, Stack, shoot
from tests.helpers import ROOT, wait_until
from tests.redis_server import free_port

pytest.importorskip("playwright")
from playwright.sync_api import Page, expect

LIVE = 15_000  # ms a live update may take (the worker, the event hub, one SSE tick)


def sign_in(browser: Any, base: str, user: str = "ana", password: str = "ana-password",
            width: int = 1280) -> Page:
    context = browser.new_context(viewport={"width": width, "height": 900})
    page: Page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the "are you sure?" confirmations
    page.goto(base + "/login")
    page.fill("input[name=name]", user)
    page.fill("input[name=password]", password)
    page.click("form:has(input[name=name]) button")
    page.wait_for_url(base + "/")
    return page


def wait_state(stack: Stack, job_id: str, state: JobState) -> None:
    wait_until(lambda: stack.app.get_job(job_id).job.state is state, 20,
               f"job {job_id} to be {state.value}")


def count_of(page: Page, queue: str, state: str) -> int:
    text = page.locator(f'tr[data-queue="{queue}"] a[data-state="{state}"]').inner_text()
    return int(text.replace(",", ""))


def test_counts_update_live_and_a_failed_job_is_fixed_from_the_dashboard(
        browser: Any, stack: Stack, tmp_path: Path) -> None:
    page = sign_in(browser, stack.base)
    page.evaluate("window.notReloaded = true")
    expect(page.locator("#live-status")).to_have_text("live")
    before = count_of(page, "default", "completed")
    for i in range(5):
        stack.enqueue("add", a=i, b=1)
    expect(page.locator('tr[data-queue="default"] a[data-state="completed"]')).to_have_text(
        str(before + 5), timeout=LIVE)
    dead = page.get_by_test_id("dead-count")
    dead_before = int(dead.inner_text().replace(",", ""))
    flag = tmp_path / "card-fixed"
    job_id = stack.enqueue("charge", customer="acme-live", flag=str(flag))
    expect(dead).to_have_text(str(dead_before + 1), timeout=LIVE)
    expect(page.locator("#nav-dead")).to_contain_text(str(dead_before + 1))
    assert page.evaluate("window.notReloaded") is True  # all of it without a reload
    page.wait_for_function("document.querySelector('#chart-throughput canvas') !== null")
    shoot(page, "overview", stack.backend)

    page.click("a.card.dead")
    expect(page.locator("h1")).to_contain_text("Dead letters")
    shoot(page, "dead-letters", stack.backend)
    page.click('tr[data-error-type$="PaymentDeclined"] a >> nth=0')
    page.click(f'tr[data-job="{job_id}"] a >> nth=0')
    expect(page.locator(".traceback").first).to_contain_text("Traceback (most recent call last)")
    expect(page.locator("#job-errors")).to_contain_text("card of acme-live declined")
    shoot(page, "job-failed", stack.backend)

    flag.touch()
    page.click("#job-head button:has-text('Retry')")
    expect(page.locator(".flash")).to_contain_text("Retried the job.")
    expect(page.locator("#job-head .badge")).to_have_text("completed", timeout=LIVE)
    expect(page.locator("#job-result")).to_contain_text("charged acme-live")
    expect(page.locator("#job-errors")).to_contain_text("attempt 1")  # kept after the retry
    page.context.close()


def test_job_page_follows_progress_and_logs_live(browser: Any, stack: Stack) -> None:
    page = sign_in(browser, stack.base)
    job_id = stack.enqueue("build_report", steps=8, pause=0.4)
    page.goto(f"{stack.base}/jobs/{job_id}")
    expect(page.locator("#job-logs")).to_contain_text("step 3 of 8", timeout=LIVE)
    expect(page.locator("#job-head .badge")).to_have_text("active")
    expect(page.locator("#job-progress [role=progressbar]")).not_to_have_attribute(
        "aria-valuenow", "0")
    shoot(page, "job-running", stack.backend)
    expect(page.locator("#job-head .badge")).to_have_text("completed", timeout=LIVE)
    expect(page.locator("#job-logs")).to_contain_text("step 8 of 8")
    expect(page.locator("#job-result")).to_contain_text('"pages": 8')
    expect(page.locator("#live-status")).to_have_text("up to date")  # the stream ended
    page.context.close()


def test_bulk_retry_of_a_filtered_set(browser: Any, stack: Stack, tmp_path: Path) -> None:
    flag = tmp_path / "bulk-fixed"
    mine = [stack.enqueue("charge", customer=f"bulk-{stack.backend}-{i}", flag=str(flag))
            for i in range(3)]
    other = stack.enqueue("charge", customer=f"elsewhere-{stack.backend}")
    for job_id in (*mine, other):
        wait_state(stack, job_id, JobState.FAILED)
    page = sign_in(browser, stack.base)
    page.goto(f"{stack.base}/queues/billing?state=failed")
    page.fill("form.filters input[name=q]", f"bulk-{stack.backend}")
    page.click("form.filters button")
    expect(page.locator("table.jobs tbody tr")).to_have_count(3)
    page.locator(f'input[name=ids][value="{mine[0]}"]').check()
    expect(page.locator("[data-selected-count]")).to_have_text("1 selected")
    expect(page.locator("button[value=retry][data-needs-selection]")).to_be_enabled()
    shoot(page, "queue", stack.backend)

    flag.touch()
    page.select_option("select[form=bulk-matching]", "retry")
    page.click("button[form=bulk-matching]")
    expect(page.locator(".flash")).to_contain_text("Retried 3 jobs matching the filter.")
    for job_id in mine:
        wait_state(stack, job_id, JobState.COMPLETED)
    assert stack.app.get_job(other).job.state is JobState.FAILED
    page.context.close()


def test_read_only_user_sees_no_actions_and_forged_actions_are_refused(
        browser: Any, stack: Stack) -> None:
    job_id = stack.enqueue("refund", customer=f"read-{stack.backend}")
    wait_state(stack, job_id, JobState.FAILED)
    page = sign_in(browser, stack.base, "rui", "rui-password")
    expect(page.locator(".who")).to_contain_text("read-only")
    page.goto(f"{stack.base}/jobs/{job_id}")
    expect(page.locator("#job-errors")).to_contain_text("no payment to refund")
    expect(page.locator("main button")).to_have_count(0)
    shoot(page, "job-read-only", stack.backend)
    page.goto(f"{stack.base}/queues/billing?state=failed")
    expect(page.locator("main button:not(.filters button)")).to_have_count(0)
    expect(page.locator("input[name=ids]")).to_have_count(0)
    page.goto(f"{stack.base}/dead")
    expect(page.locator("main button")).to_have_count(0)

    forge = """async ([url, csrf]) => (await fetch(url, {method: "POST",
        body: new URLSearchParams(csrf === null ? {} : {csrf})})).status"""
    token = page.locator("input[name=csrf]").first.get_attribute("value")
    retry = f"{stack.base}/jobs/{job_id}/retry"
    assert page.evaluate(forge, [retry, token]) == 403  # the read role, a valid token
    admin = sign_in(browser, stack.base)
    assert admin.evaluate(forge, [retry, None]) == 403  # an admin, but no CSRF token
    assert admin.evaluate(forge, [retry, "forged"]) == 403
    assert stack.app.get_job(job_id).job.state is JobState.FAILED
    page.context.close()
    admin.context.close()


def test_anonymous_visitor_logs_in_and_unknown_job_is_not_found(
        browser: Any, stack: Stack) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    missing = "01a00000-0000-7000-8000-00000000dead"
    page.goto(f"{stack.base}/jobs/{missing}")
    expect(page).to_have_url(f"{stack.base}/login?next=%2Fjobs%2F{missing}")
    shoot(page, "login", stack.backend)
    page.fill("input[name=name]", "ana")
    page.fill("input[name=password]", "wrong")
    page.click("form:has(input[name=name]) button")
    expect(page.locator(".flash.error")).to_contain_text("not accepted")
    page.fill("input[name=password]", "ana-password")
    page.click("form:has(input[name=name]) button")
    expect(page).to_have_url(f"{stack.base}/jobs/{missing}")
    expect(page.locator("h1")).to_have_text("Job not found")
    expect(page.locator(".problem .code")).to_have_text("404")
    shoot(page, "not-found", stack.backend)
    page.goto(f"{stack.base}/workers")
    expect(page.locator("#workers tbody tr").first).to_contain_text("alive")
    shoot(page, "workers", stack.backend)
    context.close()


@pytest.fixture
def prefixed(tmp_path: Path) -> Iterator[str]:
    """The dashboard mounted at /ops/jobs of a user's own FastAPI app (tests/dashboard/
    serve.py), on SQLite, with no worker."""
    port = free_port()
    env = {**os.environ, "CONVEYOR_URL": f"sqlite:///{tmp_path}/prefixed.db",
           "PYTHONPATH": PYTHONPATH, "CONVEYOR_USERS": USERS, "CONVEYOR_SECRET_KEY": SECRET}
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "tests.dashboard.serve", str(port),
                                 "/ops/jobs"], env=env, cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), 20, "the server")
        yield f"http://127.0.0.1:{port}/ops/jobs"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_mounted_at_another_prefix_everything_works_under_it(
        browser: Any, prefixed: str, tmp_path: Path) -> None:
    from tests.dashboard import tasks

    page = sign_in(browser, prefixed)
    expect(page.locator('tr[data-queue="emails"] a[data-state="waiting"]')).to_have_text("0")
    tasks.app.use(f"sqlite:///{tmp_path}/prefixed.db")
    try:
        tasks.send_email.enqueue(to="prefix@example.com")
        expect(page.locator('tr[data-queue="emails"] a[data-state="waiting"]')).to_have_text(
            "1", timeout=LIVE)  # the SSE stream is under the prefix too
    finally:
        tasks.app.close()
    page.click('tr[data-queue="emails"] a >> nth=0')
    expect(page).to_have_url(f"{prefixed}/queues/emails")
    assert page.evaluate("typeof htmx") == "object"  # the vendored files load from the mount
    page.context.close()
