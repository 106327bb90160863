"""The /v1 API through its ASGI app, on every backend: accept with 202, follow, control."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import FastAPI

from conveyor import Conveyor, JobState
from conveyor.http import create_app
from conveyor.testing import adrain
from tests.http.conftest import ADMIN, READ, settings


async def enqueue(client: httpx.AsyncClient, task: str, **body: Any) -> dict[str, Any]:
    answer = await client.post(f"/v1/tasks/{task}/jobs", json=body)
    assert answer.status_code == 202, answer.text
    data: dict[str, Any] = answer.json()
    return data


async def test_enqueue_answers_202_with_location_and_stores_the_job(
        client: httpx.AsyncClient, conveyor_app: Conveyor) -> None:
    answer = await client.post("/v1/tasks/add/jobs", json={"kwargs": {"x": 2, "y": 3}})
    assert answer.status_code == 202
    body = answer.json()
    assert answer.headers["location"] == f"/v1/jobs/{body['id']}" == body["status_url"]
    assert answer.headers["retry-after"] == "1"
    assert body["state"] == "waiting" and body["created"] is True
    assert body["events_url"] == f"/v1/jobs/{body['id']}/events"
    stored = (await conveyor_app.aget_job(body["id"])).job
    assert (stored.task, stored.kwargs) == ("add", {"x": 2, "y": 3})


async def test_options_set_queue_priority_delay_and_attempts(
        client: httpx.AsyncClient, conveyor_app: Conveyor) -> None:
    body = await enqueue(client, "add", args=[1], options={
        "queue": "math", "priority": 5, "delay": "1h", "attempts": 7, "meta": {"who": "t"}})
    job = (await conveyor_app.aget_job(body["id"])).job
    assert (job.queue, job.priority, job.max_attempts, job.state.value) == (
        "math", 5, 7, "delayed")
    assert job.meta == {"who": "t"} and job.kwargs == {"x": 1}
    status = await client.get(body["status_url"])
    assert 3500 <= int(status.headers["retry-after"]) <= 3600  # due in an hour


async def test_status_follows_the_job_to_its_result(client: httpx.AsyncClient,
                                                    conveyor_app: Conveyor) -> None:
    body = await enqueue(client, "add", kwargs={"x": 40, "y": 2})
    before = await client.get(body["status_url"])
    assert before.status_code == 200 and before.json()["done"] is False
    assert before.headers["retry-after"] == "1"
    not_yet = await client.get(body["result_url"])
    assert not_yet.status_code == 409 and not_yet.json()["type"].endswith("job-not-finished")
    await adrain(conveyor_app, ["default"])
    after = await client.get(body["status_url"])
    status = after.json()
    assert "retry-after" not in after.headers
    assert (status["state"], status["done"], status["result"], status["attempt"]) == (
        "completed", True, 42, 1)
    assert status["finished_at"].endswith("Z") and status["started_at"] is not None
    result = await client.get(body["result_url"])
    assert result.json() == {"id": body["id"], "state": "completed", "result": 42}


async def test_failed_job_shows_its_error(client: httpx.AsyncClient,
                                          conveyor_app: Conveyor) -> None:
    body = await enqueue(client, "explode")
    await adrain(conveyor_app, ["default"])
    status = (await client.get(body["status_url"])).json()
    assert status["state"] == "failed"
    assert status["error"]["type"] == "ValueError"
    assert status["error"]["message"].startswith("boom")
    result = await client.get(body["result_url"])
    assert result.status_code == 409 and result.json()["type"].endswith("job-failed")
    assert result.json()["error"]["message"].startswith("boom")


async def test_long_poll_returns_when_the_state_changes(client: httpx.AsyncClient,
                                                        conveyor_app: Conveyor) -> None:
    body = await enqueue(client, "add", kwargs={"x": 1})
    loop = asyncio.get_running_loop()
    started = loop.time()
    polled = asyncio.ensure_future(client.get(body["status_url"], params={"wait": 30}))
    await asyncio.sleep(0.3)
    assert not polled.done()  # nothing changed yet: the request is held
    await adrain(conveyor_app, ["default"])
    answer = await asyncio.wait_for(polled, 10)
    assert answer.json()["state"] in ("active", "completed")
    assert loop.time() - started < 10
    # an unchanged job answers after the wait
    waited = await client.get(body["status_url"], params={"wait": 0.2})
    assert waited.json()["state"] == "completed"


async def test_cancel_retry_and_delete(client: httpx.AsyncClient,
                                       conveyor_app: Conveyor) -> None:
    body = await enqueue(client, "add", kwargs={"x": 1})
    url = body["status_url"]
    cancelled = await client.post(url + "/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    again = await client.post(url + "/cancel")
    assert again.status_code == 409 and again.json()["type"].endswith("job-state")
    retried = await client.post(url + "/retry")
    assert retried.json()["state"] == "waiting"
    assert (await client.post(url + "/retry")).status_code == 409
    deleted = await client.delete(url)
    assert deleted.status_code == 204
    gone = await client.get(url)
    assert gone.status_code == 410 and gone.json()["type"].endswith("job-removed")
    assert (await client.delete(url)).status_code == 410
    assert (await client.post(url + "/cancel")).status_code == 410


async def test_unknown_job_is_404_never_pending(client: httpx.AsyncClient) -> None:
    for path in ("", "/result", "/events"):
        answer = await client.get(f"/v1/jobs/0000-nope{path}")
        assert answer.status_code == 404, path
        assert answer.headers["content-type"] == "application/problem+json"
    assert (await client.post("/v1/jobs/0000-nope/cancel")).status_code == 404
    assert (await client.delete("/v1/jobs/0000-nope")).status_code == 404


async def test_listing_pages_with_a_cursor_and_filters(client: httpx.AsyncClient) -> None:
    ids = [(await enqueue(client, "add", kwargs={"x": i}))["id"] for i in range(5)]
    other = await enqueue(client, "add", kwargs={"x": 9}, options={"queue": "math"})
    seen: list[str] = []
    url: str | None = "/v1/jobs?queue=default&limit=2"
    while url:
        page = await client.get(url)
        assert page.status_code == 200
        data = page.json()
        seen += [item["id"] for item in data["items"]]
        url = data["next"]
        if url:
            assert page.headers["link"] == f'<{url}>; rel="next"'
    assert seen == ids[::-1]  # newest first, each once
    waiting = (await client.get("/v1/jobs", params={"state": "waiting", "queue": "math"})).json()
    assert [item["id"] for item in waiting["items"]] == [other["id"]]
    none = (await client.get("/v1/jobs", params=[("state", "failed"), ("state", "active")]))
    assert none.json()["items"] == []


async def test_queues_show_counts_and_pause_resume(client: httpx.AsyncClient) -> None:
    await enqueue(client, "add", kwargs={"x": 1}, options={"queue": "math"})
    paused = await client.post("/v1/queues/math/pause")
    assert paused.status_code == 200 and paused.json()["paused"] is True
    [math] = [q for q in (await client.get("/v1/queues")).json() if q["name"] == "math"]
    assert math["paused"] is True and math["counts"]["waiting"] == 1
    assert math["oldest_waiting_age_seconds"] >= 0 and math["oldest_waiting_at"].endswith("Z")
    resumed = await client.post("/v1/queues/math/resume")
    assert resumed.json()["paused"] is False
    fresh = await client.post("/v1/queues/empty-one/pause?create=true")  # ahead of any job
    assert fresh.json() == {"name": "empty-one", "paused": True, "counts": {
        s.value: 0 for s in JobState},
        "oldest_waiting_at": None, "oldest_waiting_age_seconds": None}


async def test_tasks_lists_only_exposed_ones(client: httpx.AsyncClient) -> None:
    names = [t["name"] for t in (await client.get("/v1/tasks")).json()]
    assert "add" in names and "report" in names and "internal" not in names


async def test_workers_lists_live_workers(client: httpx.AsyncClient,
                                          conveyor_app: Conveyor) -> None:
    from conveyor import Worker

    worker = Worker(conveyor_app, ["default"], concurrency=2, heartbeat=0.05)
    running = asyncio.ensure_future(worker.run())
    try:
        for _ in range(100):
            workers = (await client.get("/v1/workers")).json()
            if workers:
                break
            await asyncio.sleep(0.05)
        [seen] = workers
        assert seen["id"] == worker.id and seen["queues"] == ["default"]
        assert seen["concurrency"] == 2 and seen["last_seen_at"].endswith("Z")
        assert seen["group"] is None  # a lone worker, not one of `conveyor worker -p N`
    finally:
        worker.stop(hard=True)
        await running


async def test_health_and_readiness(client: httpx.AsyncClient, api: FastAPI) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(api),
                                 base_url="http://api") as anonymous:
        assert (await anonymous.get("/healthz")).json() == {"status": "ok"}
        assert (await anonymous.get("/readyz")).status_code == 401
    assert (await client.get("/readyz")).json() == {"status": "ready"}


async def test_readyz_is_503_when_the_backend_is_unreachable(tmp_path: Any) -> None:
    down = Conveyor(f"sqlite:///{tmp_path}/missing-folder/x.db")
    api = create_app(down, settings())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(api), base_url="http://api",
                                 headers={"Authorization": f"Bearer {READ}"}) as c:
        answer = await c.get("/readyz")
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"


async def test_mounts_inside_a_users_fastapi_app(conveyor_app: Conveyor) -> None:
    user_app = FastAPI()

    @user_app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    user_app.mount("/jobs", create_app(conveyor_app, settings()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(user_app), base_url="http://u",
                                 headers={"Authorization": f"Bearer {ADMIN}"}) as c:
        assert (await c.get("/hello")).json() == {"hello": "world"}
        answer = await c.post("/jobs/v1/tasks/add/jobs", json={"kwargs": {"x": 1}})
        assert answer.status_code == 202
        job_id = answer.json()["id"]
        assert answer.headers["location"] == f"/jobs/v1/jobs/{job_id}"
        status = await c.get(answer.headers["location"])
        assert status.json()["events_url"] == f"/jobs/v1/jobs/{job_id}/events"
        assert (await c.get("/jobs/openapi.json")).status_code == 200
        missing = await c.get("/jobs/v1/jobs/nope")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"


async def test_concurrent_enqueues_share_backend_calls_and_get_their_own_jobs(
        client: httpx.AsyncClient, api: FastAPI, conveyor_app: Conveyor) -> None:
    answers = await asyncio.gather(*(
        client.post("/v1/tasks/add/jobs", json={"kwargs": {"x": i}}) for i in range(30)))
    assert {a.status_code for a in answers} == {202}
    jobs = [(await conveyor_app.aget_job(a.json()["id"])).job for a in answers]
    assert [job.kwargs["x"] for job in jobs] == list(range(30))  # each answer, its own job
    assert api.state.batcher.batches < 30


async def test_a_batch_of_several_queues_stores_each_job_in_its_queue(
        client: httpx.AsyncClient, conveyor_app: Conveyor) -> None:
    answers = await asyncio.gather(*(
        client.post("/v1/tasks/add/jobs", json={"kwargs": {"x": i},
                                                "options": {"queue": f"q{i % 3}"}})
        for i in range(12)))
    for i, answer in enumerate(answers):
        assert answer.json()["queue"] == f"q{i % 3}"
        job = (await conveyor_app.aget_job(answer.json()["id"])).job
        assert (job.queue, job.kwargs["x"]) == (f"q{i % 3}", i)
