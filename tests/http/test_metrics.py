"""/metrics: Prometheus text that promtool accepts, reflecting jobs that a real worker
process ran (the serving process computes counters from the event stream)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conveyor import Conveyor, webhooks
from tests.helpers import WorkerProcess, wait_until
from tests.http import wh_app
from tests.http.wh_receiver import Receiver
from tests.http.wh_server import ServerProcess
from tests.redis_server import redis_server, unique_url  # noqa: F401 (a session fixture)

PROMTOOL = shutil.which("promtool")
READ = {"Authorization": "Bearer metrics-reader"}
TOKENS = "read:metrics-reader,admin:metrics-admin"


@pytest.fixture(params=["sqlite", "redis"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "redis":
        return unique_url(request.getfixturevalue("redis_server"))
    return f"sqlite:///{tmp_path}/jobs.db"


@pytest.fixture
def app(url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Conveyor]:
    monkeypatch.setenv("CONVEYOR_URL", url)
    monkeypatch.setenv("CONVEYOR_WEBHOOK_ALLOW_PRIVATE", "1")
    wh_app.app.use(url)
    webhooks.enable(wh_app.app, secrets=[wh_app.NEW_SECRET], schedule="0.05s", timeout=5,
                    allow_private=True, queues={})
    yield wh_app.app
    wh_app.app.close()
    webhooks.enable(wh_app.app, secrets=[wh_app.NEW_SECRET, wh_app.OLD_SECRET],
                    schedule="0.05s,0.1s,0.2s", timeout=5, allow_private=False, queues={})


def scrape(server: ServerProcess) -> str:
    response = httpx.get(server.base + "/metrics", headers=READ, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample by (name, sorted labels), parsed by prometheus_client's own parser."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, tuple(sorted(labels.items()))))


@pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian package prometheus) is missing")
def test_promtool_accepts_metrics_and_they_follow_a_real_worker(app: Conveyor) -> None:
    with ServerProcess(app.url, "tests.http.wh_serve:api", tokens=TOKENS) as server:
        assert httpx.get(server.base + "/metrics").status_code == 401
        before = scrape(server)  # the first scrape starts following the stream here
        assert value(before, "conveyor_build_info", version="0.1.0",
                     python=__import__("platform").python_version(),
                     backend=app.url.split(":")[0]) == 1

        worker = WorkerProcess(app.url, "-q", f"work,{webhooks.QUEUE}",
                               app="tests.http.wh_app:app")
        try:
            with Receiver() as rx:
                done = [wh_app.add.enqueue(i, i) for i in range(3)]
                failed = wh_app.explode.options(webhook=rx.url("/hook")).enqueue("bad input")
                for handle in done:
                    assert handle.result(timeout=30) == 2 * done.index(handle)
                wait_until(lambda: len(rx.requests("/hook")) == 1, 30, "the webhook")
                assert json.loads(rx.requests("/hook")[0].body)["data"]["id"] == failed.id
                idle = wh_app.add.options(queue="idle").enqueue(1, 1)

                def caught_up() -> bool:
                    text = scrape(server)
                    return value(text, "conveyor_webhook_deliveries_total",
                                 outcome="delivered") == 1 and value(
                        text, "conveyor_workers", queue="work") == 1
                wait_until(caught_up, 30, "metrics to show the finished jobs")
                text = scrape(server)
        finally:
            worker.stop()
    assert idle.refresh().state.value == "waiting"

    assert PROMTOOL is not None
    check = subprocess.run([PROMTOOL, "check", "metrics"], input=text, text=True,
                           capture_output=True)
    assert check.returncode == 0, check.stdout + check.stderr

    assert value(text, "conveyor_jobs_finished_total", queue="work", task="add",
                 outcome="completed") == 3
    assert value(text, "conveyor_jobs_finished_total", queue="work", task="explode",
                 outcome="failed") == 1
    assert value(text, "conveyor_jobs_finished_total", queue=webhooks.QUEUE,
                 task=webhooks.DELIVERY_TASK, outcome="completed") == 1
    assert value(text, "conveyor_job_duration_seconds_count", queue="work", task="add") == 3
    assert value(text, "conveyor_job_wait_seconds_count", queue="work", task="add") == 3
    assert value(text, "conveyor_job_duration_seconds_bucket", queue="work", task="add",
                 le="+Inf") == 3
    assert value(text, "conveyor_queue_jobs", queue="work", state="completed") == 3
    assert value(text, "conveyor_queue_jobs", queue="work", state="failed") == 1
    assert value(text, "conveyor_queue_jobs", queue="idle", state="waiting") == 1
    assert value(text, "conveyor_workers", queue="idle") == 0
    assert value(text, "conveyor_queue_paused", queue="work") == 0
    oldest = value(text, "conveyor_queue_oldest_waiting_seconds", queue="idle")
    assert oldest is not None and oldest >= 0
    assert value(text, "conveyor_queue_oldest_waiting_seconds", queue="work") == 0
    assert "job_id" not in text and idle.id not in text  # never a job id as a label


def test_counters_do_not_replay_history_from_before_the_first_scrape(app: Conveyor) -> None:
    worker = WorkerProcess(app.url, "-q", "work", app="tests.http.wh_app:app")
    try:
        assert wh_app.add.enqueue(1, 2).result(timeout=30) == 3
    finally:
        worker.stop()
    with ServerProcess(app.url, "tests.http.wh_serve:api", tokens=TOKENS) as server:
        text = scrape(server)
        text = scrape(server)
    assert value(text, "conveyor_jobs_finished_total", queue="work", task="add",
                 outcome="completed") is None
    assert value(text, "conveyor_queue_jobs", queue="work", state="completed") == 1


def test_jobs_that_finish_after_start_up_count_before_the_first_scrape(app: Conveyor) -> None:
    """Counters follow the event stream from the server's start-up, not from the first
    scrape: a job that finished in between is counted."""
    with ServerProcess(app.url, "tests.http.wh_serve:api", tokens=TOKENS) as server:
        worker = WorkerProcess(app.url, "-q", "work", app="tests.http.wh_app:app")
        try:
            assert wh_app.add.enqueue(1, 2).result(timeout=30) == 3
        finally:
            worker.stop()
        deadline = time.monotonic() + 20  # the server reads the stream at its own pace
        while True:
            text = scrape(server)
            counted = value(text, "conveyor_jobs_finished_total", queue="work", task="add",
                            outcome="completed")
            if counted is not None or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert counted == 1


def test_metrics_need_a_token(app: Conveyor) -> None:
    with ServerProcess(app.url, "tests.http.wh_serve:api", tokens=TOKENS) as server:
        assert httpx.get(server.base + "/metrics").status_code == 401
        wrong = httpx.get(server.base + "/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert wrong.headers["content-type"] == "application/problem+json"
        admin = httpx.get(server.base + "/metrics",
                          headers={"Authorization": "Bearer metrics-admin"})
        assert admin.status_code == 200


ALERTS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"
# Two serving replicas ("a", "b") report the same values: the rules must not double them.
# "reports" grows and gathers failures but has workers; "emails" is flat, has no worker
# and its oldest job ages; "paused" has no worker either, but is paused on purpose.
RULE_TESTS = """
rule_files: [{alerts}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
{series}
    alert_rule_test:
      - eval_time: 30m
        alertname: ConveyorQueueDepthRising
        exp_alerts:
          - exp_labels: {{queue: reports, severity: warning}}
            exp_annotations:
              summary: Queue reports keeps growing
              description: >-
                Waiting jobs on reports grew by about 10 per minute for 15 minutes; add
                workers or look for a slow dependency.
      - eval_time: 30m
        alertname: ConveyorDeadLetterGrowing
        exp_alerts:
          - exp_labels: {{queue: reports, severity: warning}}
            exp_annotations:
              summary: Failed jobs accumulate on reports
              description: >-
                15 more failed jobs on reports in 15 minutes; inspect their errors, then
                retry or remove them.
      - eval_time: 4m
        alertname: ConveyorQueueWithoutWorkers
        exp_alerts: []
      - eval_time: 10m
        alertname: ConveyorQueueWithoutWorkers
        exp_alerts:
          - exp_labels: {{queue: emails, severity: critical}}
            exp_annotations:
              summary: No worker consumes emails
              description: >-
                50 jobs wait on emails and no live worker lists it; start one (conveyor
                worker APP -q emails).
      - eval_time: 5m
        alertname: ConveyorOldestWaitingJobTooOld
        exp_alerts: []
      - eval_time: 12m
        alertname: ConveyorOldestWaitingJobTooOld
        exp_alerts:
          - exp_labels: {{queue: emails, severity: warning}}
            exp_annotations:
              summary: Jobs on emails wait too long
              description: The oldest waiting job on emails has waited 12m 0s.
      - eval_time: 20m
        alertname: ConveyorWebhooksFailing
        exp_alerts:
          - exp_labels: {{severity: warning}}
            exp_annotations:
              summary: Webhook deliveries fail
              description: >-
                2 webhook deliveries failed for good in 30 minutes; see GET
                /v1/jobs/{{id}}/webhooks of the announced jobs.
      - eval_time: 20m
        alertname: ConveyorScheduleNotCompleting
        exp_alerts: []
      - eval_time: 30m
        alertname: ConveyorScheduleNotCompleting
        exp_alerts:
          - exp_labels: {{schedule: stuck, severity: warning}}
            exp_annotations:
              summary: Schedule stuck has not completed a run for 2 intervals
              description: >-
                Its last run completed 30m 0s ago; see conveyor schedules and the last
                run's job.
"""
SERIES = {
    'conveyor_queue_jobs{{queue="reports",state="waiting",instance="{i}"}}': "200+10x40",
    'conveyor_queue_jobs{{queue="reports",state="failed",instance="{i}"}}': "0x10 1+1x30",
    'conveyor_workers{{queue="reports",instance="{i}"}}': "2x40",
    'conveyor_queue_oldest_waiting_seconds{{queue="reports",instance="{i}"}}': "3x40",
    'conveyor_queue_paused{{queue="reports",instance="{i}"}}': "0x40",
    'conveyor_queue_jobs{{queue="emails",state="waiting",instance="{i}"}}': "50x40",
    'conveyor_queue_jobs{{queue="emails",state="failed",instance="{i}"}}': "4x40",
    'conveyor_workers{{queue="emails",instance="{i}"}}': "0x40",
    'conveyor_queue_oldest_waiting_seconds{{queue="emails",instance="{i}"}}': "0+60x40",
    'conveyor_queue_paused{{queue="emails",instance="{i}"}}': "0x40",
    'conveyor_queue_jobs{{queue="paused",state="waiting",instance="{i}"}}': "7x40",
    'conveyor_workers{{queue="paused",instance="{i}"}}': "0x40",
    'conveyor_queue_oldest_waiting_seconds{{queue="paused",instance="{i}"}}': "0+60x40",
    'conveyor_queue_paused{{queue="paused",instance="{i}"}}': "1x40",
    'conveyor_webhook_deliveries_total{{outcome="failed",instance="{i}"}}': "0x5 1x5 2x30",
    'conveyor_webhook_deliveries_total{{outcome="delivered",instance="{i}"}}': "0+5x40",
    # "stuck" (every 10 minutes) last completed at 0; "daily" and "held" (paused) are fine
    'conveyor_schedule_seconds_since_success{{schedule="stuck",instance="{i}"}}': "0+60x40",
    'conveyor_schedule_interval_seconds{{schedule="stuck",instance="{i}"}}': "600x40",
    'conveyor_schedule_paused{{schedule="stuck",instance="{i}"}}': "0x40",
    'conveyor_schedule_seconds_since_success{{schedule="daily",instance="{i}"}}': "0+60x40",
    'conveyor_schedule_interval_seconds{{schedule="daily",instance="{i}"}}': "86400x40",
    'conveyor_schedule_paused{{schedule="daily",instance="{i}"}}': "0x40",
    'conveyor_schedule_seconds_since_success{{schedule="held",instance="{i}"}}': "0+60x40",
    'conveyor_schedule_interval_seconds{{schedule="held",instance="{i}"}}': "60x40",
    'conveyor_schedule_paused{{schedule="held",instance="{i}"}}': "1x40",
}


@pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian package prometheus) is missing")
def test_shipped_alert_rules_are_valid_and_fire_when_they_should(tmp_path: Path) -> None:
    assert PROMTOOL is not None
    check = subprocess.run([PROMTOOL, "check", "rules", str(ALERTS)], capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 6 rules found" in check.stdout

    series = "\n".join(f"      - series: '{name.format(i=i)}'\n        values: '{values}'"
                       for i in "ab" for name, values in SERIES.items())
    tests = tmp_path / "alerts_test.yml"
    tests.write_text(RULE_TESTS.format(alerts=ALERTS, series=series))
    run = subprocess.run([PROMTOOL, "test", "rules", str(tests)], capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stdout + run.stderr
