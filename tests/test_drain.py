"""`drain` and delayed jobs: promoted and run (the default), waited for, or skipped."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor import Conveyor, JobState
from conveyor.errors import ConfigurationError, ResultTimeoutError
from conveyor.testing import drain
from tests import worker_app
from tests.helpers import ledger_counts


def test_by_default_a_delayed_job_is_promoted_and_run(app: Conveyor, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    later = worker_app.record.options(delay="5m").enqueue(str(ledger))
    assert later.refresh().state is JobState.DELAYED
    assert drain(app, ["default"], timeout=10) == 1
    assert later.result(timeout=1) == later.id
    assert ledger_counts(ledger) == {later.id: 1}


def test_wait_runs_a_delayed_job_when_it_is_due(app: Conveyor, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    soon = worker_app.record.options(delay=0.3).enqueue(str(ledger))
    assert drain(app, ["default"], delayed="wait", timeout=10) == 1
    assert soon.result(timeout=1) == soon.id


def test_wait_times_out_on_a_job_due_after_the_timeout(app: Conveyor, tmp_path: Path) -> None:
    later = worker_app.record.options(delay="5m").enqueue(str(tmp_path / "ledger"))
    with pytest.raises(ResultTimeoutError):
        drain(app, ["default"], delayed="wait", timeout=0.5)
    assert later.refresh().state is JobState.DELAYED


def test_skip_runs_what_is_due_and_leaves_delayed_jobs(app: Conveyor, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    later = worker_app.record.options(delay="5m").enqueue(str(ledger))
    now = worker_app.record.enqueue(str(ledger))
    assert drain(app, ["default"], delayed="skip", timeout=10) == 1
    assert now.result(timeout=1) == now.id
    assert later.refresh().state is JobState.DELAYED
    assert ledger_counts(ledger) == {now.id: 1}


def test_an_unknown_choice_is_refused(app: Conveyor) -> None:
    with pytest.raises(ConfigurationError, match="delayed must be"):
        drain(app, ["default"], delayed="later")  # type: ignore[arg-type]
