"""The dashboard's screens and actions, in-process on SQLite: what each page shows, that
every link follows the mount's prefix, pagination, bulk actions, clean, dead letters."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conveyor import Conveyor
from conveyor.backends import base
from conveyor.backends.base import JobFilter, NewJob, WorkerInfo
from conveyor.dashboard import views
from conveyor.ids import new_job_id
from conveyor.jobs import JobState
from conveyor.testing import adrain
from tests.dashboard import tasks
from tests.dashboard.conftest import Browserish


async def admin(open_client: Callable[..., Browserish], prefix: str = "/dashboard"
                ) -> Browserish:
    tab = open_client(prefix)
    await tab.login("ana", "ana-password")
    return tab


def state_of(app: Conveyor, job_id: str) -> JobState:
    return app.get_job(job_id).job.state


async def test_overview_shows_every_queue_with_counts_and_dead_letters(
        conveyor_app: Conveyor, open_client: Callable[..., Browserish]) -> None:
    for i in range(3):
        tasks.add.enqueue(a=i, b=1)
    tasks.refund.enqueue(customer="x")
    await adrain(conveyor_app, ["billing"])
    page = await (await admin(open_client)).get("/")
    assert page.status_code == 200
    row = re.search(r'<tr[^>]*data-queue="default".*?</tr>', page.text, re.S)
    assert row and re.search(r'data-state="waiting"[^>]*>3<', row.group(0))
    assert re.search(r'data-testid="dead-count">1<', page.text)
    for queue in ("default", "emails", "billing", "reports"):  # the app's queues, even empty
        assert f'data-queue="{queue}"' in page.text
    assert "no worker" in page.text  # jobs wait in default and nobody consumes it


async def test_unknown_job_is_a_not_found_page(open_client: Callable[..., Browserish]) -> None:
    page = await (await admin(open_client)).get("/jobs/01a00000-0000-7000-8000-000000000000")
    assert page.status_code == 404 and "Job not found" in page.text
    queue = await (await admin(open_client)).get("/queues/no-such-queue")
    assert queue.status_code == 404 and "not found" in queue.text


async def test_removed_job_says_removed(conveyor_app: Conveyor,
                                        open_client: Callable[..., Browserish]) -> None:
    job_id = tasks.add.enqueue(a=1, b=2).id
    tab = await admin(open_client)
    await tab.get(f"/jobs/{job_id}")
    done = await tab.post(f"/jobs/{job_id}/remove")
    assert done.status_code == 303 and done.headers["location"] == "/dashboard/queues/default"
    page = await tab.get(f"/jobs/{job_id}")
    assert page.status_code == 410 and "removed" in page.text


async def test_job_page_shows_arguments_result_timeline_and_every_error(
        conveyor_app: Conveyor, open_client: Callable[..., Browserish], tmp_path: Path) -> None:
    flag = tmp_path / "fixed"
    job_id = tasks.charge.enqueue(customer="acme", flag=str(flag)).id
    await adrain(conveyor_app)
    tab = await admin(open_client)
    page = await tab.get(f"/jobs/{job_id}")
    assert "PaymentDeclined" in page.text and "Traceback (most recent call last)" in page.text
    assert "card of acme declined" in page.text and "customer" in page.text
    assert "Attempt 1 failed" in page.text and 'action="/dashboard/jobs/' in page.text
    flag.touch()
    retried = await tab.post(f"/jobs/{job_id}/retry")
    assert retried.status_code == 303
    await adrain(conveyor_app)
    page = await tab.get(f"/jobs/{job_id}")
    assert "completed" in page.text and "charged acme" in page.text
    assert "Retried the job." in page.text or "Completed" in page.text
    assert "PaymentDeclined" in page.text  # the first attempt's error is kept


async def test_dashboard_mounted_at_any_prefix_links_within_it(
        conveyor_app: Conveyor, open_client: Callable[..., Browserish]) -> None:
    job_id = tasks.refund.enqueue(customer="p").id
    await adrain(conveyor_app)
    tab = open_client("/ops/jobs")
    first = await tab.get("/dead")
    assert first.headers["location"].startswith("/ops/jobs/login?next=")
    assert "Path=/ops/jobs/" in first.headers["set-cookie"]
    await tab.login("ana", "ana-password")
    for path in ("/", "/dead", f"/jobs/{job_id}", "/queues/billing", "/workers"):
        page = await tab.get(path)
        assert page.status_code == 200, path
        links = re.findall(r'(?:href|action|src|sse-connect)="(/[^"]*)"', page.text)
        assert links and all(link.startswith("/ops/jobs/") for link in links), path
    static = await tab.client.get("/ops/jobs/static/dashboard.css")
    assert static.status_code == 200
    replay = await tab.post("/dead/replay", {"scope": "one", "id": job_id})
    assert replay.headers["location"].startswith("/ops/jobs/dead")
    assert state_of(conveyor_app, job_id) is JobState.WAITING


async def test_queue_pages_follow_the_cursor_without_gaps_or_repeats(
        conveyor_app: Conveyor, open_client: Callable[..., Browserish]) -> None:
    conveyor_app.enqueue_many([tasks.add.prepare(a=i, b=0) for i in range(120)])
    tab = await admin(open_client)
    seen: list[str] = []
    path = "/queues/default?state=waiting"
    for number in (1, 2, 3):
        page = await tab.get(path)
        ids = re.findall(r'<tr data-job="([^"]+)"', page.text)
        assert len(ids) == (50 if number < 3 else 20)
        assert f"Page {number} of 3" in page.text
        seen += ids
        found = re.search(r'href="/dashboard(/queues/default\?[^"]*cursor=[^"]*)"', page.text)
        if number < 3:
            assert found
            path = found.group(1).replace("&amp;", "&")
        else:
            assert found is None
    assert len(set(seen)) == 120
    bad = await tab.get("/queues/default?cursor=garbage")
    assert bad.status_code == 400


async def test_search_finds_jobs_by_id_task_arguments_and_error(
        conveyor_app: Conveyor, open_client: Callable[..., Browserish]) -> None:
    wanted = tasks.charge.enqueue(customer="needle-co").id
    tasks.charge.enqueue(customer="haystack")
    tasks.refund.enqueue(customer="other")
    await adrain(conveyor_app)
    tab = await admin(open_client)

    async def found(query: str) -> list[str]:
        page = await tab.get(f"/queues/billing?{query}")
        return re.findall(r'<tr data-job="([^"]+)"', page.text)

    assert await found("q=needle") == [wanted]
    assert await found(f"q={wanted}") == [wanted]
    assert len(await found("q=ValueError")) == 1
    assert len(await found("task=charge&state=failed")) == 2


async def test_bulk_retry_of_a_filtered_set_leaves_the_rest(
        conveyor_app: Conveyor, open_client: Callable[..., Browserish]) -> None:
    acme = [tasks.charge.enqueue(customer=f"acme-{i}").id for i in range(3)]
    other = tasks.charge.enqueue(customer="globex").id
    refund = tasks.refund.enqueue(customer="acme-9").id
    await adrain(conveyor_app)
    tab = await admin(open_client)
    await tab.get("/queues/billing?state=failed&q=acme&task=charge")
    done = await tab.post("/queues/billing/bulk", {"action": "retry", "scope": "matching",
                                                   "state": "failed", "q": "acme",
                                                   "task": "charge"})
    assert done.status_code == 303
    assert "state=failed" in done.headers["location"] and "q=acme" in done.headers["location"]
    assert [state_of(conveyor_app, i) for i in acme] == [JobState.WAITING] * 3
    assert state_of(conveyor_app, other) is JobState.FAILED
    assert state_of(conveyor_app, refund) is JobState.FAILED
    page = await tab.get("/queues/billing?state=failed")
    assert "Retried 3 jobs matching the filter." in page.text


async def test_bulk_action_on_selected_jobs_only(
        conveyor_app: Conveyor, open_client: Callable[..., Browserish]) -> None:
    ids = [tasks.send_email.options(delay="1h").enqueue(to=f"{i}@x").id for i in range(4)]
    tab = await admin(open_client)
    await tab.get("/queues/emails?state=delayed")
    done = await tab.post("/queues/emails/bulk", {"action": "promote", "scope": "selected",
                                                  "ids": ids[:2], "state": "delayed"})
    assert done.status_code == 303
    assert [state_of(conveyor_app, i) for i in ids] == [JobState.WAITING] * 2 + [
        JobState.DELAYED] * 2
    cancelled = await tab.post("/queues/emails/bulk", {"action": "cancel",
                                                       "scope": "selected", "ids": ids})
    assert cancelled.status_code == 303
    assert all(state_of(conveyor_app, i) is JobState.CANCELLED for i in ids)
    page = await tab.get("/queues/emails")
    assert "Cancelled 4 jobs." in page.text


async def test_pause_resume_and_clean(conveyor_app: Conveyor,
                                      open_client: Callable[..., Browserish]) -> None:
    old = [tasks.add.enqueue(a=i, b=1).id for i in range(3)]
    await adrain(conveyor_app)
    await asyncio.sleep(0.05)
    tab = await admin(open_client)
    await tab.get("/queues/default")
    assert (await tab.post("/queues/default/pause", {"paused": "1"})).status_code == 303
    page = await tab.get("/queues/default")
    assert "paused" in page.text and "Resume queue" in page.text
    backend = conveyor_app.backend
    assert [q.paused for q in await backend.queues() if q.name == "default"] == [True]
    await tab.post("/queues/default/pause", {"paused": "0"})
    assert [q.paused for q in await backend.queues() if q.name == "default"] == [False]
    kept = await tab.post("/queues/default/clean", {"state": "completed", "age": "1",
                                                    "unit": "hours"})
    assert kept.status_code == 303
    assert all(state_of(conveyor_app, i) is JobState.COMPLETED for i in old)
    await tab.post("/queues/default/clean", {"state": "completed", "age": "0.0001",
                                             "unit": "minutes"})
    left = await backend.list_jobs(JobFilter(queue="default"))
    assert left.jobs == []
    page = await tab.get("/queues/default")
    assert "Removed 3 jobs completed more than" in page.text
    refused = await tab.post("/queues/default/clean", {"state": "waiting", "age": "0",
                                                       "unit": "hours"})
    assert refused.status_code == 303
    assert "finished" in (await tab.get("/queues/default")).text


async def test_dead_letters_grouped_by_error_type_and_replayed_by_group(
        conveyor_app: Conveyor, open_client: Callable[..., Browserish]) -> None:
    declined = [tasks.charge.enqueue(customer=f"c{i}").id for i in range(3)]
    refunds = [tasks.refund.enqueue(customer=f"r{i}").id for i in range(2)]
    await adrain(conveyor_app)
    tab = await admin(open_client)
    page = await tab.get("/dead")
    groups = re.findall(r'data-error-type="([^"]+)"', page.text)
    assert groups == ["tests.dashboard.tasks.PaymentDeclined", "ValueError"]  # biggest first
    listed = await tab.get("/dead?type=ValueError")
    assert sorted(re.findall(r'<tr data-job="([^"]+)"', listed.text)) == sorted(refunds)
    await tab.post("/dead/replay", {"scope": "group", "type": "ValueError"})
    assert all(state_of(conveyor_app, i) is JobState.WAITING for i in refunds)
    assert all(state_of(conveyor_app, i) is JobState.FAILED for i in declined)
    await tab.post("/dead/replay", {"scope": "one", "id": declined[0]})
    assert state_of(conveyor_app, declined[0]) is JobState.WAITING
    await tab.post("/dead/replay", {"scope": "all"})
    assert all(state_of(conveyor_app, i) is JobState.WAITING for i in declined)
    assert "No failed jobs" in (await tab.get("/dead")).text


async def test_an_action_that_does_not_apply_explains_why(
        conveyor_app: Conveyor, open_client: Callable[..., Browserish]) -> None:
    job_id = tasks.add.enqueue(a=1, b=1).id
    tab = await admin(open_client)
    await tab.get(f"/jobs/{job_id}")
    done = await tab.post(f"/jobs/{job_id}/retry")
    assert done.status_code == 303
    page = await tab.get(f"/jobs/{job_id}")
    assert "Cannot retry this job: it is waiting" in page.text
    assert state_of(conveyor_app, job_id) is JobState.WAITING


@pytest.mark.slow
async def test_pages_stay_fast_with_100k_jobs(conveyor_app: Conveyor,
                                              open_client: Callable[..., Browserish]) -> None:
    for start in range(0, 100_000, 25_000):  # straight to the backend: faster than prepare()
        await conveyor_app.backend.enqueue([
            NewJob(id=new_job_id(), queue="default", task="add", args_json="[]",
                   kwargs_json=f'{{"a": {i}, "b": 0}}') for i in range(start, start + 25_000)])
    newest = await conveyor_app.backend.list_jobs(JobFilter(queue="default"), limit=1)
    assert newest.jobs
    tab = await admin(open_client)
    slowest = 0.0
    for path in ("/", "/queues/default", "/queues/default?state=waiting",
                 "/queues/default?q=99999", "/dead", "/workers",
                 f"/jobs/{newest.jobs[0].id}"):
        started = time.perf_counter()
        page = await tab.get(path)
        took = time.perf_counter() - started
        assert page.status_code == 200, path
        slowest = max(slowest, took)
    # a guard against a full scan per page (the figure belongs to bench/), loose enough for
    # a busy CI machine
    assert slowest < 5.0, f"slowest page took {slowest:.2f}s"
    assert "100,000" in (await tab.get("/queues/default")).text


@pytest.mark.parametrize("silent_s", [5, 20, 29, 31, 60])
def test_cli_and_dashboard_call_a_worker_stale_after_the_same_silence(silent_s: int) -> None:
    from conveyor.cli import render

    now = 1_000_000_000
    worker = WorkerInfo("w", "h", 1, ("q",), 1, last_seen_at=now - silent_s * 1000)
    dashboard_says_stale = worker not in views.live_workers([worker], now)
    assert render.is_stale(worker, now) == dashboard_says_stale == (silent_s > 30)


async def test_workers_page_marks_workers_that_stopped_heartbeating(
        conveyor_app: Conveyor, open_client: Callable[..., Browserish],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "STALE_AFTER_MS", 1000)
    backend = conveyor_app.backend
    tab = await admin(open_client)
    for worker_id in ("w-alive", "w-silent"):
        await backend.heartbeat(WorkerInfo(worker_id, "host-a", 42, ("billing",), 4), [], 5000)
    await asyncio.sleep(1.2)  # past the staleness limit, and past the 1 s snapshot cache
    await backend.heartbeat(WorkerInfo("w-alive", "host-a", 42, ("billing",), 4, 1), [], 5000)
    page = await tab.get("/workers")
    alive = re.search(r'data-worker="w-alive".*?</tr>', page.text, re.S)
    silent = re.search(r'data-worker="w-silent".*?</tr>', page.text, re.S)
    assert alive and "alive" in alive.group(0) and "1 / 4" in alive.group(0)
    assert silent and "stale" in silent.group(0)
    assert 'class="stale"' in page.text and "1 stale" in page.text


def test_the_dashboard_package_imports_on_its_own() -> None:
    done = subprocess.run([sys.executable, "-c", "import conveyor.dashboard"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


async def test_a_job_page_shows_the_idempotency_key_not_the_internal_dedup_key(
        conveyor_app: Conveyor, open_client: Callable[..., Browserish]) -> None:
    job_id = tasks.add.options(key="idem:add/order-17", meta={
        "idempotency": {"key": "order-17", "fingerprint": "f"}}).enqueue(a=1, b=2).id
    page = await (await admin(open_client)).get(f"/jobs/{job_id}")
    assert "Idempotency-Key" in page.text and "order-17" in page.text
    assert "idem:" not in page.text


async def test_attempts_are_numbered_across_retries_by_hand(
        conveyor_app: Conveyor, open_client: Callable[..., Browserish], tmp_path: Path) -> None:
    flag = tmp_path / "fixed"
    job_id = tasks.charge.enqueue(customer="acme", flag=str(flag)).id  # 1 attempt per run
    await adrain(conveyor_app, ["billing"])
    await conveyor_app.aretry_job(job_id)
    await adrain(conveyor_app, ["billing"])
    tab = await admin(open_client)
    failed = (await tab.get(f"/jobs/{job_id}")).text
    assert "Failed after 1 attempt of its last run (2 in all, retried by hand 1 time)" in failed
    assert "2 attempts failed" in failed
    labels = re.findall(r'<span class="pill bad">attempt (\d+)</span>', failed)
    assert labels == ["2", "1"]  # newest first, numbered over the job's life
    flag.touch()
    await conveyor_app.aretry_job(job_id)
    await adrain(conveyor_app, ["billing"])
    done = (await tab.get(f"/jobs/{job_id}")).text
    steps = re.findall(r"(Attempt \d+ (?:failed|started)|Retried by hand)", done)
    assert steps == ["Attempt 1 failed", "Retried by hand", "Attempt 2 failed",
                     "Retried by hand", "Attempt 3 started"]
    assert "3 in all, retried by hand 2 times" in done


async def test_go_to_job_takes_any_unique_start_or_end_of_an_id(
        conveyor_app: Conveyor, open_client: Callable[..., Browserish]) -> None:
    ids = [tasks.add.enqueue(a=i, b=1).id for i in range(3)]
    tab = await admin(open_client)
    target = ids[1]
    for typed in (target, target[-12:], "…" + target[-12:], target[:30].upper()):
        went = await tab.get("/find", params={"id": typed})
        assert went.status_code == 303, typed
        assert went.headers["location"] == f"/dashboard/jobs/{target}"
    common = ids[0][:4]  # ids made in one burst share their time prefix
    several = await tab.get("/find", params={"id": common})
    assert several.status_code == 409 and "type more of the id" in several.text
    none = await tab.get("/find", params={"id": "zzzz-no-such"})
    assert none.status_code == 404 and "No job id starts or ends with" in none.text
