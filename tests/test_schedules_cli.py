"""``conveyor schedules``: the listing and pause / resume / trigger / delete by name;
one-line errors and a non-zero exit for an unknown name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from conveyor import Conveyor
from conveyor.cli import cli

runner = CliRunner()


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    db = f"sqlite:///{tmp_path}/s.db"
    monkeypatch.delenv("CONVEYOR_APP", raising=False)
    app = Conveyor(db)

    @app.task
    def digest(user_id: int) -> None: ...

    app.schedules.create("digest-daily", "digest", cron="0 9 * * *", tz="Europe/Lisbon",
                         kwargs={"user_id": 1})
    app.close()
    return db


def run(url: str, *args: str) -> Result:
    return runner.invoke(cli, ["--url", url, "schedules", *args])


def test_lists_name_task_expression_tz_next_and_last_run(url: str) -> None:
    shown = run(url)
    assert shown.exit_code == 0, shown.output
    for text in ("digest-daily", "digest", "0 9 * * *", "Europe/Lisbon"):
        assert text in shown.stdout
    [data] = json.loads(run(url, "--json").stdout)
    assert data["name"] == "digest-daily" and data["next_run_at"].endswith("Z")
    assert data["last_run_at"] is None and data["last_outcome"] is None


def test_pause_resume_trigger_delete(url: str) -> None:
    assert run(url, "pause", "digest-daily").exit_code == 0
    assert "paused" in run(url).stdout
    assert run(url, "resume", "digest-daily").exit_code == 0
    triggered = run(url, "trigger", "digest-daily")
    assert triggered.exit_code == 0
    job_id = triggered.stdout.strip()
    [data] = json.loads(run(url, "--json").stdout)
    assert data["last_job_id"] == job_id and data["last_outcome"] == "waiting"
    assert data["paused"] is False
    assert run(url, "delete", "digest-daily").exit_code == 0
    assert json.loads(run(url, "--json").stdout) == []


@pytest.mark.parametrize("action", ["pause", "resume", "trigger", "delete"])
def test_an_unknown_name_is_a_one_line_error(url: str, action: str) -> None:
    result = run(url, action, "nope")
    assert result.exit_code == 1
    assert result.stderr == "error: no schedule named 'nope'\n"
