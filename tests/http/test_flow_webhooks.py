"""A flow's webhook (`flow.notify(url)`), end to end: a real worker process runs the
flow and the delivery, a real receiver answers, and `standardwebhooks` verifies it; one
delivery per flow, sent once its last job has finished, with every job's state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from conveyor import Conveyor, InvalidFlowError, JobState, chain, group
from tests.helpers import WorkerProcess
from tests.http import wh_app
from tests.http.test_webhooks import _finished_delivery, app, worker  # noqa: F401 (fixtures)
from tests.http.wh_receiver import Receiver


def test_a_flow_is_announced_once_when_its_last_job_ends(
        app: Conveyor, worker: WorkerProcess) -> None:  # noqa: F811 (fixtures)
    with Receiver() as rx:
        handles = chain(wh_app.add.prepare(1, 2), wh_app.add.prepare(3, 4)).notify(
            rx.url("/flow")).enqueue(app)
        flow_id = handles[0].job.flow_id
        assert flow_id is not None
        delivery = _finished_delivery(app, flow_id)
        assert delivery.state is JobState.COMPLETED
        failing = group([wh_app.explode.prepare("no paper")]).then(
            wh_app.add.prepare(1, 1), on="success").notify(rx.url("/failed")).enqueue(app)
        assert failing[0].job.flow_id is not None
        _finished_delivery(app, failing[0].job.flow_id)
        got, failed = rx.requests("/flow"), rx.requests("/failed")
    assert len(got) == 1 and len(failed) == 1
    body = Webhook(wh_app.NEW_SECRET).verify(got[0].body, got[0].headers)
    assert body["type"] == "flow.completed"
    assert [j["state"] for j in body["data"]["jobs"]] == ["completed", "completed"]
    assert json.loads(failed[0].body)["type"] == "flow.failed"


def test_notify_needs_webhooks_enabled(tmp_path: Path) -> None:
    other = Conveyor(f"sqlite:///{tmp_path}/x.db")

    @other.task
    def noop() -> None: ...

    with pytest.raises(InvalidFlowError, match="webhooks"):
        chain(noop.prepare(), noop.prepare()).notify("https://example.com/h").enqueue(other)
    other.close()
