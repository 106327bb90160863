"""Idempotency-Key: a replay returns the original job, a different body is refused, and
concurrent duplicates make one job."""

from __future__ import annotations

import asyncio

import httpx

from conveyor import Conveyor, JobFilter


async def all_jobs(app: Conveyor) -> list[str]:
    return [job.id for job in (await app.backend.list_jobs(JobFilter(), 1000)).jobs]


async def test_same_key_and_body_return_the_original_job(client: httpx.AsyncClient,
                                                         conveyor_app: Conveyor) -> None:
    headers = {"Idempotency-Key": "order-17"}
    first = await client.post("/v1/tasks/add/jobs", json={"kwargs": {"x": 1, "y": 2}},
                              headers=headers)
    # the same body, written differently: key order, an explicit default, whitespace
    again = await client.post("/v1/tasks/add/jobs", headers={
        **headers, "content-type": "application/json"},
        content=b'{ "args": [], "kwargs": {"y": 2, "x": 1} }')
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert first.json()["created"] is True and again.json()["created"] is False
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == first.headers["location"]
    assert await all_jobs(conveyor_app) == [first.json()["id"]]


async def test_same_key_with_another_body_is_422_and_changes_nothing(
        client: httpx.AsyncClient, conveyor_app: Conveyor) -> None:
    headers = {"Idempotency-Key": "order-18"}
    first = await client.post("/v1/tasks/add/jobs", json={"kwargs": {"x": 1}}, headers=headers)
    other_args = await client.post("/v1/tasks/add/jobs", json={"kwargs": {"x": 2}},
                                   headers=headers)
    other_options = await client.post("/v1/tasks/add/jobs", headers=headers, json={
        "kwargs": {"x": 1}, "options": {"priority": 3}})
    for answer in (other_args, other_options):
        assert answer.status_code == 422
        assert answer.json()["type"] == "urn:conveyor:problem:idempotency-key-reused"
    assert await all_jobs(conveyor_app) == [first.json()["id"]]
    job = (await conveyor_app.aget_job(first.json()["id"])).job
    assert job.kwargs == {"x": 1} and job.priority == 0


async def test_a_key_is_scoped_to_its_task_and_queue(client: httpx.AsyncClient,
                                                     conveyor_app: Conveyor) -> None:
    headers = {"Idempotency-Key": "shared"}
    add = await client.post("/v1/tasks/add/jobs", json={"kwargs": {"x": 1}}, headers=headers)
    other_task = await client.post("/v1/tasks/nothing/jobs", headers=headers)
    other_queue = await client.post("/v1/tasks/add/jobs", headers=headers, json={
        "kwargs": {"x": 1}, "options": {"queue": "math"}})
    replay = await client.post("/v1/tasks/add/jobs", headers=headers, json={
        "kwargs": {"x": 1}, "options": {"queue": "math"}})
    assert {a.status_code for a in (add, other_task, other_queue, replay)} == {202}
    assert len({add.json()["id"], other_task.json()["id"], other_queue.json()["id"]}) == 3
    assert replay.json()["id"] == other_queue.json()["id"]
    assert len(await all_jobs(conveyor_app)) == 3


async def test_different_keys_make_different_jobs(client: httpx.AsyncClient,
                                                  conveyor_app: Conveyor) -> None:
    ids = {(await client.post("/v1/tasks/add/jobs", json={"kwargs": {"x": 1}},
                              headers={"Idempotency-Key": key})).json()["id"]
           for key in ("a", "b", '"a"')}  # '"a"' is the draft's quoted form of a
    assert len(ids) == 2 and len(await all_jobs(conveyor_app)) == 2


async def test_twenty_concurrent_duplicates_make_one_job(client: httpx.AsyncClient,
                                                         conveyor_app: Conveyor) -> None:
    async def submit() -> httpx.Response:
        return await client.post("/v1/tasks/add/jobs", json={"kwargs": {"x": 5}},
                                 headers={"Idempotency-Key": "click-1"})

    answers = await asyncio.gather(*(submit() for _ in range(20)))
    assert {a.status_code for a in answers} == {202}
    ids = {a.json()["id"] for a in answers}
    assert len(ids) == 1
    assert sum(a.json()["created"] for a in answers) == 1
    assert await all_jobs(conveyor_app) == list(ids)


async def test_long_keys_up_to_255_characters_work(client: httpx.AsyncClient,
                                                   conveyor_app: Conveyor) -> None:
    key = "k" * 255
    first = await client.post("/v1/tasks/add/jobs", json={"kwargs": {"x": 1}},
                              headers={"Idempotency-Key": key})
    again = await client.post("/v1/tasks/add/jobs", json={"kwargs": {"x": 1}},
                              headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert len(await all_jobs(conveyor_app)) == 1


async def test_options_key_deduplicates_whatever_the_arguments(
        client: httpx.AsyncClient, conveyor_app: Conveyor) -> None:
    first = await client.post("/v1/tasks/add/jobs", json={"kwargs": {"x": 1},
                                                          "options": {"key": "user-9"}})
    second = await client.post("/v1/tasks/add/jobs", json={"kwargs": {"x": 2},
                                                           "options": {"key": "user-9"}})
    assert second.status_code == 202 and second.json()["created"] is False
    assert first.json()["id"] == second.json()["id"]


async def test_the_internal_dedup_key_never_shows_in_job_json(
        client: httpx.AsyncClient) -> None:
    long_key = "k" * 250  # namespaced, it is over the limit and gets hashed
    for header in ("order-17", long_key):
        answer = await client.post("/v1/tasks/add/jobs", json={"kwargs": {"x": 1}},
                                   headers={"Idempotency-Key": header})
        assert answer.status_code == 202
        status = (await client.get(answer.json()["status_url"])).json()
        assert status["key"] is None and status["idempotency_key"] == header
        listed = (await client.get("/v1/jobs")).json()["items"]
        assert all(not (item["key"] or "").startswith("idem") for item in listed)
    keyed = await client.post("/v1/tasks/add/jobs",
                              json={"kwargs": {"x": 2}, "options": {"key": "mine"}})
    status = (await client.get(keyed.json()["status_url"])).json()
    assert (status["key"], status["idempotency_key"]) == ("mine", None)
