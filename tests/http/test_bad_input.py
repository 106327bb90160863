"""Bad input over HTTP is refused with a 4xx problem and stores nothing, on every backend:
control characters in keys, numbers JSON cannot hold, nesting past the limit, booleans for
numbers, repeated headers, times that are not date-times."""

from __future__ import annotations

import httpx
import pytest

from conveyor import Conveyor
from conveyor.backends.base import JobFilter
from conveyor.errors import InvalidOptionError
from tests.http import http_app


async def stored(app: Conveyor) -> int:
    await app.aopen()
    page = await app.backend.list_jobs(JobFilter(), 1000, None)
    return len(page.jobs)


async def post(client: httpx.AsyncClient, raw: bytes | str, task: str = "add",
               headers: dict[str, str] | None = None) -> httpx.Response:
    return await client.post(f"/v1/tasks/{task}/jobs", content=raw,
                             headers={"Content-Type": "application/json", **(headers or {})})


@pytest.mark.parametrize("key", ["a\rb", "a\nb", "a\x00b", "a\x1bb", "a\u2028b", "a\x85b"])
async def test_a_key_with_control_characters_is_refused(
        client: httpx.AsyncClient, conveyor_app: Conveyor, key: str) -> None:
    answer = await client.post("/v1/tasks/add/jobs",
                               json={"kwargs": {"x": 1}, "options": {"key": key}})
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["loc"] == ["body", "options", "key"]
    with pytest.raises(InvalidOptionError, match="control characters"):
        await http_app.add.options(key=key).aenqueue(x=1)
    assert await stored(conveyor_app) == 0


@pytest.mark.parametrize("key", ["a\tb", "a\x7fb"])
async def test_an_idempotency_key_with_control_characters_is_refused(
        client: httpx.AsyncClient, conveyor_app: Conveyor, key: str) -> None:
    answer = await client.post("/v1/tasks/add/jobs", json={"kwargs": {"x": 1}},
                               headers={"Idempotency-Key": key})
    assert answer.status_code == 400 and "Idempotency-Key" in answer.json()["detail"]
    assert await stored(conveyor_app) == 0


async def test_a_key_with_unicode_text_is_still_accepted(
        client: httpx.AsyncClient, conveyor_app: Conveyor) -> None:
    answer = await client.post("/v1/tasks/add/jobs",
                               json={"kwargs": {"x": 1}, "options": {"key": "façade 東京"}})
    assert answer.status_code == 202
    assert (await conveyor_app.aget_job(answer.json()["id"])).job.key == "façade 東京"
