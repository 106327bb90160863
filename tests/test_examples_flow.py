"""examples/flow.py runs as the README shows it: a worker stores its limits, jobs run
through them, the per-job key option picks another tenant's budget, and a runtime change
shows in the listing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from examples import flow

from conveyor import Conveyor, JobState
from conveyor.testing import drain


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Conveyor]:
    flow.app.use(f"sqlite:///{tmp_path}/example.db")
    yield flow.app
    flow.app.close()


def test_the_example_limits_are_stored_and_its_jobs_run_through_them(app: Conveyor) -> None:
    flow.enqueue_some()
    mail = flow.send_email.enqueue("ana@example.com")
    drain(app, ["emails", "llm"])
    assert mail.refresh().state is JobState.COMPLETED
    stored = {(i.queue, i.name): i for i in app.limits.list()}
    assert {k: i.effective for k, i in stored.items()} == {
        ("emails", "queue"): {"rate": [10, 1000], "concurrency": 20},
        ("llm", "openai"): {"rate": [500, 60_000], "concurrency": None},
        ("llm", "task:summarize"): {"rate": [60, 60_000], "concurrency": 2},
    }
    # both summaries started within the minute: one in each tenant's own budget
    starts = {u.key: u.starts for u in stored[("llm", "task:summarize")].use}
    assert starts == {"acme": 1, "globex": 1}
    assert {u.key: u.starts for u in stored[("llm", "openai")].use} == {"": 2}
    changed = app.limits.set("task:summarize", rate_limit="20/m")
    assert changed.effective == {"rate": [20, 60_000], "concurrency": 2}
    assert app.limits.reset("task:summarize").effective == {"rate": [60, 60_000],
                                                            "concurrency": 2}
