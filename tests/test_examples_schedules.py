"""examples/schedules.py runs as the README shows it: its declarations are stored by name
and `trigger` runs one now (the scheduler itself: tests/test_schedule_processes.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from examples import schedules

from conveyor import Conveyor, JobState
from conveyor.testing import drain


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Conveyor]:
    schedules.app.use(f"sqlite:///{tmp_path}/example.db")
    yield schedules.app
    schedules.app.close()


def test_the_examples_schedules_are_stored_fired_and_run(app: Conveyor) -> None:
    report = app.schedules.store_declared()
    assert sorted(report.created) == ["cleanup", "daily_digest"]
    listed = {s.name: s for s in app.schedules.list()}
    assert listed["daily_digest"].tz == "Europe/Lisbon"
    assert listed["cleanup"].expression == "every 15m" and listed["cleanup"].kwargs == {"days": 30}

    job = app.schedules.trigger("cleanup")
    drain(app, ["default"])
    assert job.refresh().state is JobState.COMPLETED and job.result(timeout=5) == 30
    assert app.schedules.get("cleanup").last_outcome == "completed"
