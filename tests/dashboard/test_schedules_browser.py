"""The Schedules page in Debian's chromium against a real `conveyor serve` and worker
(SQLite and Redis): next runs, pause / resume / run-now buttons, the last run's job link
to a job page that shows the schedule and tick, and no buttons for a read-only user."""

from __future__ import annotations

from typing import Any

import pytest

from tests.dashboard.conftest import Stack, shoot
from tests.dashboard.test_browser import LIVE, sign_in

pytest.importorskip("playwright")
from playwright.sync_api import expect


def test_the_schedules_page_shows_and_drives_schedules(browser: Any, stack: Stack) -> None:
    name = f"digest-{stack.backend}"
    stack.app.schedules.create(name, "add", every="1h", kwargs={"a": 1, "b": 2})
    page = sign_in(browser, stack.base)
    page.click("nav >> text=Schedules")
    row = page.locator(f'tr[data-schedule="{name}"]')
    expect(row).to_contain_text("every 1h")
    expect(row.locator(".next-run")).to_contain_text("in ")
    expect(row.locator(".last-job")).to_contain_text("—")

    row.locator("button", has_text="Run now").click()
    expect(page.locator(".flash")).to_contain_text("Triggered schedule")
    link = page.locator(f'tr[data-schedule="{name}"] .last-job a')
    expect(link).to_have_count(1)
    shoot(page, "schedules", stack.backend)
    job_id = stack.app.schedules.get(name).last_job_id
    href = link.get_attribute("href", timeout=LIVE)
    assert job_id is not None and href is not None and href.endswith(job_id)

    page.locator(f'tr[data-schedule="{name}"] button', has_text="Pause").click()
    row = page.locator(f'tr[data-schedule="{name}"]')
    expect(row.locator(".next-run")).to_contain_text("paused")
    assert stack.app.schedules.get(name).paused
    row.locator("button", has_text="Resume").click()
    expect(page.locator(f'tr[data-schedule="{name}"] .next-run')).to_contain_text("in ")
    assert not stack.app.schedules.get(name).paused

    page.locator(f'tr[data-schedule="{name}"] .last-job a').click()
    expect(page.locator("body")).to_contain_text(f'"schedule": "{name}"')
    expect(page.locator("body")).to_contain_text('"tick":')

    reader = sign_in(browser, stack.base, user="rui", password="rui-password")
    reader.goto(stack.base + "/schedules")
    expect(reader.locator(f'tr[data-schedule="{name}"]')).to_contain_text("every 1h")
    expect(reader.locator(f'tr[data-schedule="{name}"] button')).to_have_count(0)
