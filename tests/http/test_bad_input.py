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


@pytest.mark.parametrize("raw", [
    '{"kwargs": {"x": NaN}}', '{"kwargs": {"x": Infinity}}', '{"kwargs": {"x": -Infinity}}',
    '{"kwargs": {"x": 1e400}}', '{"args": [-1e400]}', '{"options": {"meta": {"a": NaN}}}',
])
async def test_numbers_json_cannot_hold_are_refused_not_stored_as_null(
        client: httpx.AsyncClient, conveyor_app: Conveyor, raw: str) -> None:
    answer = await post(client, raw)
    assert answer.status_code == 400, answer.text
    problem = answer.json()
    assert problem["type"].endswith("malformed-json")
    assert "NaN or Infinity" in problem["detail"]
    assert await stored(conveyor_app) == 0


def nested(depth: int) -> str:
    """A body whose arrays and objects nest `depth` levels, its own object included."""
    return '{"args": [' + "[" * (depth - 2) + "]" * (depth - 2) + "]}"


async def test_json_nested_within_the_limit_is_accepted_and_deeper_is_too_deep(
        client: httpx.AsyncClient, conveyor_app: Conveyor) -> None:
    from conveyor.http.body import MAX_JSON_DEPTH

    answer = await post(client, nested(MAX_JSON_DEPTH), task="echo")
    assert answer.status_code == 202, answer.text
    for depth in (MAX_JSON_DEPTH + 1, 5000):
        refused = await post(client, nested(depth), task="echo")
        assert refused.status_code == 400, refused.text
        problem = refused.json()
        assert problem["type"].endswith("json-too-deep")
        assert f"deeper than {MAX_JSON_DEPTH} levels" in problem["detail"]
        assert problem["limit"] == MAX_JSON_DEPTH
    assert await stored(conveyor_app) == 1


@pytest.mark.parametrize(("body", "where"), [
    ({"kwargs": {"x": True}}, ["x"]),
    ({"args": [True]}, ["x"]),
    ({"kwargs": {"x": "1"}}, ["x"]),
    ({"kwargs": {"x": 1.5}}, ["x"]),
    ({"kwargs": {"x": 1, "y": False}}, ["y"]),
    ({"kwargs": {"x": 1}, "options": {"priority": True}}, ["body", "options", "priority"]),
    ({"kwargs": {"x": 1}, "options": {"attempts": "3"}}, ["body", "options", "attempts"]),
    ({"kwargs": {"x": 1}, "options": {"timeout": False}}, ["body", "options", "timeout"]),
    ({"kwargs": {"x": 1}, "options": {"delay": True}}, ["body", "options", "delay"]),
])
async def test_numbers_are_strict_over_http(
        client: httpx.AsyncClient, conveyor_app: Conveyor, body: dict[str, object],
        where: list[object]) -> None:
    answer = await client.post("/v1/tasks/add/jobs", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["loc"][:len(where)] == where
    assert await stored(conveyor_app) == 0


async def test_strict_numbers_still_take_numbers_of_the_right_kind(
        client: httpx.AsyncClient, conveyor_app: Conveyor) -> None:
    answer = await client.post("/v1/tasks/add/jobs", json={
        "args": [2], "kwargs": {"y": 3}, "options": {"timeout": 5, "delay": 0}})
    assert answer.status_code == 202, answer.text
    job = (await conveyor_app.aget_job(answer.json()["id"])).job
    assert (job.args, job.kwargs) in (([2], {"y": 3}), ([], {"x": 2, "y": 3}))


async def test_two_idempotency_key_headers_are_refused(
        client: httpx.AsyncClient, conveyor_app: Conveyor) -> None:
    answer = await client.post(
        "/v1/tasks/add/jobs", json={"kwargs": {"x": 1}},
        headers=[("Idempotency-Key", "first"), ("Idempotency-Key", "second")])
    assert answer.status_code == 400 and "one Idempotency-Key" in answer.json()["detail"]
    assert await stored(conveyor_app) == 0


@pytest.mark.parametrize("key", [None, "big-number"])
async def test_an_integer_beyond_64_bits_is_refused_not_a_5xx(
        client: httpx.AsyncClient, conveyor_app: Conveyor, key: str | None) -> None:
    headers = {"Idempotency-Key": key} if key else {}
    answer = await client.post("/v1/tasks/add/jobs", json={"kwargs": {"x": 2**70}},
                               headers=headers)
    assert answer.status_code == 422, answer.text
    assert "Integer exceeds 64-bit range" in answer.json()["detail"]
    assert await stored(conveyor_app) == 0


@pytest.mark.parametrize("run_at", [0, 1_900_000_000, "0", "1900000000", "2030-01-01",
                                    "2030-01-01T00:00:00", True])
async def test_run_at_is_a_date_time_string_as_the_schema_says(
        client: httpx.AsyncClient, conveyor_app: Conveyor, run_at: object) -> None:
    answer = await client.post("/v1/tasks/add/jobs",
                               json={"kwargs": {"x": 1}, "options": {"run_at": run_at}})
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["loc"][:3] == ["body", "options", "run_at"]
    assert await stored(conveyor_app) == 0


async def test_run_at_as_a_date_time_delays_the_job(
        client: httpx.AsyncClient, conveyor_app: Conveyor) -> None:
    answer = await client.post("/v1/tasks/add/jobs", json={
        "kwargs": {"x": 1}, "options": {"run_at": "2999-01-31T12:00:00+01:00"}})
    assert answer.status_code == 202, answer.text
    assert answer.json()["state"] == "delayed"


async def test_the_schema_says_what_run_at_and_cursors_look_like(
        client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    run_at = schema["components"]["schemas"]["EnqueueOptions"]["properties"]["run_at"]
    text = next(s for s in run_at["anyOf"] if s.get("type") == "string")
    assert text["format"] == "date-time" and text["pattern"].startswith("^\\d{4}-")
    listing = schema["paths"]["/v1/jobs"]["get"]["parameters"]
    cursor = next(p for p in listing if p["name"] == "cursor")
    assert cursor["schema"]["pattern"] == "^[A-Za-z0-9_-]{1,200}$"
    assert "base64url" in cursor["description"]
