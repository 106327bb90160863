"""Fixtures shared by the worker tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import Conveyor
from tests import worker_app


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Conveyor]:
    """The tests' task module (tests/worker_app.py) pointed at a fresh SQLite file; worker
    processes started by the test find it through CONVEYOR_URL."""
    url = f"sqlite:///{tmp_path}/jobs.db"
    monkeypatch.setenv("CONVEYOR_URL", url)
    worker_app.app.use(url)
    yield worker_app.app
    worker_app.app.close()


MISSING_TOOL = ("is missing", "not installed")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """In CI every server, browser and tool is installed by .ci/run, so a test skipped
    because one is missing is a failure there, not a skip."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if os.environ.get("CI") and report.skipped and any(
            text in str(report.longrepr) for text in MISSING_TOOL):
        report.outcome = "failed"
        report.longrepr = f"CI must have every tool; skipped: {report.longrepr}"
