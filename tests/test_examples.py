"""The examples run as documented: the report pipeline reports progress and returns a
result, the flaky call succeeds on retry, the CPU job runs in a child process, and four
clicks with one key send one email. Docs that run: every Python snippet in README.md is
(verbatim) part of a file under examples/, and every such file is run by a test."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from examples import client, reports, tasks, testing

from conveyor import Conveyor, JobState
from conveyor.testing import drain
from tests.helpers import ROOT, WorkerProcess
from tests.http.wh_server import ServerProcess

EXAMPLES = ROOT / "examples"


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


def readme_snippets() -> list[str]:
    """Each ```python block of README.md, dedented (some sit inside a list item)."""
    text = (ROOT / "README.md").read_text()
    return [textwrap.dedent(body)
            for _, body in re.findall(r"^( *)```python\n(.*?)^\1```$", text, re.M | re.S)]


def test_every_readme_snippet_is_part_of_an_example_file() -> None:
    sources = {p.name: p.read_text() for p in EXAMPLES.glob("*.py")}
    snippets = readme_snippets()
    missing = [s for s in snippets if not any(s in source for source in sources.values())]
    assert len(snippets) >= 4
    assert missing == [], "README snippets not found verbatim in examples/*.py"


def test_every_example_file_is_run_by_a_test() -> None:
    tests = " ".join(p.read_text() for p in (ROOT / "tests").rglob("*.py"))
    unrun = [p.name for p in EXAMPLES.glob("*.py") if p.name != "__init__.py"
             and not re.search(rf"examples[./]{p.stem}\b|from examples import .*\b{p.stem}\b",
                               tests)]
    assert unrun == []


def test_the_readme_tour_enqueues_runs_and_reads_jobs(tmp_path: Path) -> None:
    # examples.tasks stores jobs in conveyor.db of the current folder: an empty one here
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}"}
    done = subprocess.run([sys.executable, "-m", "examples.enqueue"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "completed", "{'user_id': 1, 'score': 97, 'attempt': 1}", "completed", "delayed"]
    assert (tmp_path / "conveyor.db").exists()


def test_the_readme_testing_example_passes(tmp_path: Path) -> None:
    try:
        testing.test_report(tmp_path)
    finally:
        tasks.app.close()
    assert (tmp_path / "jobs.db").exists()


def test_the_readme_client_gets_a_report_from_a_server(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path}/jobs.db"
    monkeypatch.setenv("CONVEYOR_EXAMPLE_SPEED", "2000")  # the worker process inherits it
    worker = WorkerProcess(url, "-q", "reports", app="examples.reports:app")
    try:
        with ServerProcess(url, "tests.examples_serve:api", tokens="admin:s3cret") as server:
            answer = client.report(7, server=server.base)
    finally:
        output = worker.stop()
    assert isinstance(answer, dict) and answer["summary"].startswith("user 7: score")
    assert "Traceback" not in output, output
