"""options.dedup and options.expires over HTTP: a fold answers 202 with the existing job
and says so; bad specs are a 422 and store nothing."""

from __future__ import annotations

import httpx
import pytest

from conveyor import Conveyor, JobFilter


async def all_jobs(app: Conveyor) -> list[str]:
    return [job.id for job in (await app.backend.list_jobs(JobFilter(), 1000)).jobs]


async def test_a_folded_enqueue_says_which_job_it_joined(client: httpx.AsyncClient,
                                                         conveyor_app: Conveyor) -> None:
    options = {"dedup": {"key": "sum:{x}", "until": "started", "replace": True},
               "expires": "10m"}
    first = await client.post("/v1/tasks/add/jobs", json={"kwargs": {"x": 1, "y": 2},
                                                          "options": options})
    again = await client.post("/v1/tasks/add/jobs", json={"kwargs": {"x": 1, "y": 5},
                                                          "options": options})
    assert first.status_code == again.status_code == 202
    assert first.json()["created"] is True and first.json()["folded_into"] is None
    assert again.json()["created"] is False
    assert again.json()["folded_into"] == again.json()["id"] == first.json()["id"]
    assert await all_jobs(conveyor_app) == [first.json()["id"]]
    job = (await conveyor_app.aget_job(first.json()["id"])).job
    assert job.kwargs == {"x": 1, "y": 5}  # replace: the newest arguments


@pytest.mark.parametrize("options", [
    {"dedup": {"key": "k", "ttl": -1}},
    {"dedup": {"key": "k", "until": "never"}},
    {"dedup": {"key": "k", "debounce": "1s", "until": "finished"}},
    {"dedup": {"key": "k", "ttl": "1s", "debounce": "1s"}},
    {"dedup": {"key": "k", "max_wait": "1s"}},
    {"dedup": {"key": "{x.__class__}"}},
    {"dedup": {"key": "{nope}"}},
    {"dedup": {"until": "started"}},
    {"dedup": {"key": "k", "replace": "yes"}},
    {"expires": -5},
    {"expires": 0},
    {"expires": "1s", "delay": 5},
])
async def test_bad_dedup_or_expiry_is_422_and_stores_nothing(
        client: httpx.AsyncClient, conveyor_app: Conveyor, options: dict[str, object]) -> None:
    answer = await client.post("/v1/tasks/add/jobs", json={"kwargs": {"x": 1, "y": 2},
                                                           "options": options})
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert await all_jobs(conveyor_app) == []


async def test_an_idempotent_request_with_a_huge_integer_is_a_4xx_not_a_5xx(
        client: httpx.AsyncClient, conveyor_app: Conveyor) -> None:
    # the Idempotency-Key fingerprint once raised on integers past 64 bits (a 500)
    headers = {"Idempotency-Key": "big", "content-type": "application/json"}
    body = b'{"args": [-9223372036854775809]}'
    first = await client.post("/v1/tasks/nothing/jobs", content=body, headers=headers)
    again = await client.post("/v1/tasks/nothing/jobs", content=body, headers=headers)
    assert first.status_code == again.status_code == 422  # `nothing` takes no arguments
    assert await all_jobs(conveyor_app) == []
