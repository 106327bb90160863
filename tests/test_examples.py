"""The example app runs as documented: the report pipeline reports progress and returns a
result, the flaky call succeeds on retry, the CPU job runs in a child process, and four
clicks with one key send one email."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from examples import reports

from conveyor import Conveyor, JobState
from conveyor.testing import drain


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Conveyor]:
    monkeypatch.setattr(reports, "SPEED", 2_000.0)
    reports.app.use(f"sqlite:///{tmp_path}/example.db")
    yield reports.app
    reports.app.close()


def test_report_pipeline_reports_each_step_and_returns_a_summary(app: Conveyor) -> None:
    job = reports.generate_report.enqueue(user_id=1, days=90)
    drain(app, ["reports"])
    summary = job.result(timeout=5)["summary"]
    assert isinstance(summary, str) and summary.startswith("user 1: score")
    events = app.run_sync(app.backend.events, 0, 1000, job.id)
    steps = [e.data["progress"]["step"] for e in events if e.kind == "progress"]
    order = ["parse", "billing", "usage", "support", "score", "synthesize"]
    # back-to-back reports may be merged (only the latest progress is sent), but the
    # steps separated by a log line all arrive, in order
    assert steps == sorted(steps, key=order.index)
    assert {"parse", "billing", "usage", "synthesize"} <= set(steps)
    assert [entry["message"] for entry in job.refresh().logs] == [
        "calling the billing service", "calling the usage service",
        "calling the support service"]


def test_report_with_bad_days_fails_without_retrying(app: Conveyor) -> None:
    job = reports.generate_report.enqueue(user_id=1, days=0)
    drain(app, ["reports"])
    final = job.refresh()
    assert final.state is JobState.FAILED and final.attempt == 1


def test_flaky_call_succeeds_on_retry(app: Conveyor) -> None:
    seed = next(s for s in range(1000)
                if (r := random.Random(s)).random() < 0.3 and r.random() >= 0.3)
    random.seed(seed)  # the first call fails, the second succeeds
    job = reports.flaky_call.enqueue()
    drain(app, ["default"], concurrency=1)
    assert "quote" in job.result(timeout=5)
    assert [e["type"] for e in job.refresh().errors] == ["examples.reports.UpstreamError"]


def test_cpu_job_runs_in_a_child_process(app: Conveyor) -> None:
    job = reports.render_thumbnail.enqueue(seed=7, size=64, rounds=4)
    drain(app, ["images"], timeout=60, process_workers=1)
    fingerprint = job.result(timeout=5)["fingerprint"]
    assert isinstance(fingerprint, str) and len(fingerprint) == 16


def test_four_clicks_with_one_key_send_one_email(app: Conveyor) -> None:
    clicks = [reports.send_email.options(key="welcome:ana").enqueue(to="ana@example.com")
              for _ in range(4)]
    assert len({c.id for c in clicks}) == 1
    assert [c.created for c in clicks] == [True, False, False, False]
    assert drain(app, ["emails"]) == 1
    assert clicks[0].result(timeout=5)["status"] == "sent"
