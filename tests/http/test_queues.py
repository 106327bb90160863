"""Queues over HTTP: a typo makes no queue (pause/resume of a name that is no queue is
404 unless asked to create it), and an empty queue can be deleted, after which it shows in
no listing; on every backend."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from conveyor import Conveyor
from tests.http import http_app
from tests.http.conftest import READ


async def listed(client: httpx.AsyncClient) -> dict[str, bool]:
    return {q["name"]: q["paused"] for q in (await client.get("/v1/queues")).json()}


async def test_pausing_a_name_that_is_no_queue_is_404_and_lists_nothing(
        client: httpx.AsyncClient) -> None:
    for action in ("pause", "resume"):
        answer = await client.post(f"/v1/queues/typoq/{action}")
        assert answer.status_code == 404, answer.text
        problem = answer.json()
        assert problem["type"].endswith("unknown-queue") and "typoq" in problem["detail"]
    assert "typoq" not in await listed(client)


async def test_a_registered_tasks_queue_and_a_queue_with_jobs_are_known(
        client: httpx.AsyncClient, conveyor_app: Conveyor) -> None:
    assert (await client.post("/v1/queues/reports/pause")).status_code == 200  # a task's
    await http_app.add.options(queue="adhoc").aenqueue(x=1)
    assert (await client.post("/v1/queues/adhoc/pause")).status_code == 200  # has a job
    assert await listed(client) == {"reports": True, "adhoc": True}


async def test_create_pauses_ahead_and_delete_forgets_the_empty_queue(
        client: httpx.AsyncClient) -> None:
    made = await client.post("/v1/queues/later/pause", params={"create": "true"})
    assert made.status_code == 200 and made.json()["paused"] is True
    assert (await listed(client))["later"] is True
    gone = await client.delete("/v1/queues/later")
    assert gone.status_code == 204
    assert "later" not in await listed(client)
    again = await client.delete("/v1/queues/later")
    assert again.status_code == 404 and again.json()["type"].endswith("unknown-queue")


async def test_a_queue_that_holds_jobs_is_not_deleted(
        client: httpx.AsyncClient, conveyor_app: Conveyor) -> None:
    job = await http_app.add.options(queue="busy").aenqueue(x=1)
    refused = await client.delete("/v1/queues/busy")
    assert refused.status_code == 409 and refused.json()["type"].endswith("queue-not-empty")
    assert (await conveyor_app.aget_job(job.id)).job.state.value == "waiting"
    assert "busy" in await listed(client)


async def test_deleting_needs_admin(api: FastAPI) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(api), base_url="http://api",
                                 headers={"Authorization": f"Bearer {READ}"}) as reader:
        assert (await reader.delete("/v1/queues/reports")).status_code == 403
