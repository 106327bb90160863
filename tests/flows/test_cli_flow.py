"""`conveyor flow ID`: the flow's jobs, states and what each waits for; --cancel."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conveyor import Conveyor, chain
from conveyor.cli import cli
from tests.flows import flow_app as fa

runner = CliRunner()


@pytest.fixture
def flow_id(app: Conveyor, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CONVEYOR_APP", "tests.flows.flow_app:app")
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    handles = chain(fa.number.prepare(1), fa.add.prepare(2), pass_result=True).enqueue(app)
    assert handles[0].job.flow_id is not None
    return handles[0].job.flow_id


def test_conveyor_flow_shows_its_jobs_and_what_they_wait_for(flow_id: str) -> None:
    result = runner.invoke(cli, ["flow", flow_id])
    assert result.exit_code == 0, result.output
    assert "running" in result.output and "waiting-children" in result.output
    assert "1 of 1 dependencies left" in result.output
    data = json.loads(runner.invoke(cli, ["flow", flow_id, "--json"]).output)
    assert [j["task"] for j in data["jobs"]] == ["number", "add"]
    shown = runner.invoke(cli, ["job", data["jobs"][1]["id"]])
    assert "waiting: 1 of 1 dependencies left" in shown.output


def test_conveyor_flow_cancel_and_unknown_flow(flow_id: str) -> None:
    result = runner.invoke(cli, ["flow", flow_id, "--cancel", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["state"] == "cancelled"
    missing = runner.invoke(cli, ["flow", "nope"])
    assert missing.exit_code == 2 and "no flow 'nope'" in missing.output
