"""Bad input gets a 4xx application/problem+json answer and stores nothing; auth refuses
unauthenticated and read-scoped callers on admin routes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from conveyor import Conveyor, JobFilter
from tests.http.conftest import BODY_LIMIT, READ

JSON = {"content-type": "application/json"}

# (name, method, path, request keyword arguments, status, problem type suffix)
BAD_REQUESTS: list[tuple[str, str, str, dict[str, Any], int, str]] = [
    ("malformed JSON", "POST", "/v1/tasks/add/jobs",
     {"content": b'{"kwargs": {"x": 1}', "headers": JSON}, 400, "malformed-json"),
    ("body not an object", "POST", "/v1/tasks/add/jobs", {"json": [1, 2]}, 422, "validation"),
    ("kwargs not an object", "POST", "/v1/tasks/add/jobs", {"json": {"kwargs": [1]}}, 422,
     "validation"),
    ("unknown body field", "POST", "/v1/tasks/add/jobs",
     {"json": {"kwargs": {"x": 1}, "extra": 1}}, 422, "validation"),
    ("wrong argument type", "POST", "/v1/tasks/add/jobs", {"json": {"kwargs": {"x": "a"}}},
     422, "invalid-job"),
    ("missing argument", "POST", "/v1/tasks/add/jobs", {"json": {"kwargs": {"y": 1}}}, 422,
     "invalid-job"),
    ("unexpected argument", "POST", "/v1/tasks/add/jobs",
     {"json": {"kwargs": {"x": 1, "z": 2}}}, 422, "invalid-job"),
    ("too many positional", "POST", "/v1/tasks/add/jobs", {"json": {"args": [1, 2, 3]}}, 422,
     "invalid-job"),
    ("integer beyond 64 bits", "POST", "/v1/tasks/record/jobs",
     {"json": {"kwargs": {"ledger": "x", "n": 2**70}}}, 422, "invalid-job"),
    ("unknown task", "POST", "/v1/tasks/nope/jobs", {"json": {}}, 404, "unknown-task"),
    ("task not exposed", "POST", "/v1/tasks/internal/jobs",
     {"json": {"kwargs": {"secret": "s"}}}, 404, "unknown-task"),
    ("bad queue name", "POST", "/v1/tasks/add/jobs",
     {"json": {"kwargs": {"x": 1}, "options": {"queue": "no spaces!"}}}, 422, "validation"),
    ("negative delay", "POST", "/v1/tasks/add/jobs",
     {"json": {"kwargs": {"x": 1}, "options": {"delay": -5}}}, 422, "validation"),
    ("absurd delay", "POST", "/v1/tasks/add/jobs",
     {"json": {"kwargs": {"x": 1}, "options": {"delay": 1e300}}}, 422, "validation"),
    ("unparsable delay", "POST", "/v1/tasks/add/jobs",
     {"json": {"kwargs": {"x": 1}, "options": {"delay": "soon"}}}, 422, "validation"),
    ("naive run_at", "POST", "/v1/tasks/add/jobs",
     {"json": {"kwargs": {"x": 1}, "options": {"run_at": "2030-01-01T00:00:00"}}}, 422,
     "validation"),
    ("zero attempts", "POST", "/v1/tasks/add/jobs",
     {"json": {"kwargs": {"x": 1}, "options": {"attempts": 0}}}, 422, "validation"),
    ("bad backoff", "POST", "/v1/tasks/add/jobs",
     {"json": {"kwargs": {"x": 1}, "options": {"backoff": "sometimes"}}}, 422, "validation"),
    ("backoff schedule", "POST", "/v1/tasks/add/jobs",
     {"json": {"kwargs": {"x": 1}, "options": {"backoff": ",,"}}}, 422, "validation"),
    ("zero timeout", "POST", "/v1/tasks/add/jobs",
     {"json": {"kwargs": {"x": 1}, "options": {"timeout": 0}}}, 422, "validation"),
    ("webhook not a URL", "POST", "/v1/tasks/add/jobs",
     {"json": {"kwargs": {"x": 1}, "options": {"webhook": "mailto:x@y"}}}, 422, "validation"),
    ("unknown option", "POST", "/v1/tasks/add/jobs",
     {"json": {"kwargs": {"x": 1}, "options": {"colour": "red"}}}, 422, "validation"),
    ("reserved key prefix", "POST", "/v1/tasks/add/jobs",
     {"json": {"kwargs": {"x": 1}, "options": {"key": "idem:x"}}}, 422, "validation"),
    ("key and Idempotency-Key", "POST", "/v1/tasks/add/jobs",
     {"json": {"kwargs": {"x": 1}, "options": {"key": "k"}},
      "headers": {"Idempotency-Key": "i"}}, 422, "validation"),
    ("Idempotency-Key too long", "POST", "/v1/tasks/add/jobs",
     {"json": {"kwargs": {"x": 1}}, "headers": {"Idempotency-Key": "k" * 256}}, 400,
     "invalid-header"),
    ("Idempotency-Key not ASCII", "POST", "/v1/tasks/add/jobs",
     {"json": {"kwargs": {"x": 1}}, "headers": {"Idempotency-Key": "clé".encode()}}, 400,
     "invalid-header"),
    ("body over the limit", "POST", "/v1/tasks/record/jobs",
     {"json": {"kwargs": {"ledger": "x" * BODY_LIMIT}}}, 413, "payload-too-large"),
    ("form body", "POST", "/v1/tasks/add/jobs",
     {"content": b"x=1", "headers": {"content-type": "application/x-www-form-urlencoded"}},
     415, "unsupported-media-type"),
    ("bad cursor", "GET", "/v1/jobs?cursor=garbage", {}, 400, "invalid-request"),
    ("bad state filter", "GET", "/v1/jobs?state=sleeping", {}, 422, "validation"),
    ("bad limit", "GET", "/v1/jobs?limit=0", {}, 422, "validation"),
    ("bad queue filter", "GET", "/v1/jobs?queue=a%20b", {}, 422, "validation"),
    ("bad queue to pause", "POST", "/v1/queues/a%20b/pause", {}, 422, "validation"),
    ("bad wait", "GET", "/v1/jobs/x?wait=3600", {}, 422, "validation"),
    ("bad Last-Event-ID", "GET", "/v1/jobs/x/events", {"headers": {"Last-Event-ID": "abc"}},
     422, "validation"),
    ("negative last_event_id", "GET", "/v1/jobs/x/events?last_event_id=-1", {}, 422,
     "validation"),
    ("unknown route", "GET", "/v1/nothing-here", {}, 404, "not-found"),
    ("wrong method", "PUT", "/v1/jobs", {}, 405, "method-not-allowed"),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "kind"),
                         [case[1:] for case in BAD_REQUESTS],
                         ids=[case[0] for case in BAD_REQUESTS])
async def test_bad_input_is_a_4xx_problem_and_stores_nothing(
        client: httpx.AsyncClient, conveyor_app: Conveyor, method: str, path: str,
        kwargs: dict[str, Any], status: int, kind: str) -> None:
    answer = await client.request(method, path, **kwargs)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["type"] == f"urn:conveyor:problem:{kind}"
    assert problem["status"] == status and problem["title"] and problem["detail"]
    page = await conveyor_app.backend.list_jobs(JobFilter(), 10)
    assert page.jobs == []


async def test_field_problems_are_listed(client: httpx.AsyncClient) -> None:
    answer = await client.post("/v1/tasks/add/jobs", json={"kwargs": {"x": "a", "y": "b"}})
    errors = answer.json()["errors"]
    assert [e["loc"] for e in errors] == [["x"], ["y"]]
    assert all(e["msg"] for e in errors)
    answer = await client.post("/v1/tasks/add/jobs", json={"options": {"priority": "high"}})
    assert answer.json()["errors"][0]["loc"] == ["body", "options", "priority"]


async def test_a_streamed_body_over_the_limit_is_refused(client: httpx.AsyncClient,
                                                         conveyor_app: Conveyor) -> None:
    async def chunks() -> Any:  # no Content-Length: the size is only known while reading
        yield b'{"kwargs": {"ledger": "'
        for _ in range(BODY_LIMIT // 1000 + 1):
            yield b"x" * 1000
        yield b'"}}'

    answer = await client.post("/v1/tasks/record/jobs", content=chunks(), headers=JSON)
    assert answer.status_code == 413
    assert answer.headers["content-type"] == "application/problem+json"
    assert (await conveyor_app.backend.list_jobs(JobFilter(), 10)).jobs == []


ADMIN_ROUTES = [("POST", "/v1/tasks/add/jobs"), ("POST", "/v1/jobs/x/cancel"),
                ("POST", "/v1/jobs/x/retry"), ("DELETE", "/v1/jobs/x"),
                ("POST", "/v1/queues/q/pause"), ("POST", "/v1/queues/q/resume")]
READ_ROUTES = [("GET", "/v1/jobs/x"), ("GET", "/v1/jobs"), ("GET", "/v1/queues"),
               ("GET", "/v1/workers"), ("GET", "/v1/tasks"), ("GET", "/v1/jobs/x/result"),
               ("GET", "/v1/jobs/x/events"), ("GET", "/readyz")]


@pytest.mark.parametrize("token", [None, "wrong-token"])
@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES + READ_ROUTES)
async def test_without_a_valid_token_everything_is_401(
        api: FastAPI, conveyor_app: Conveyor, method: str, path: str, token: str | None) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(api), base_url="http://api",
                                 headers=headers) as anonymous:
        answer = await anonymous.request(method, path, json={"kwargs": {"x": 1}})
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert answer.headers["content-type"] == "application/problem+json"
    assert (await conveyor_app.backend.list_jobs(JobFilter(), 10)).jobs == []
    assert not any(q.paused for q in await conveyor_app.backend.queues())


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
async def test_a_read_token_is_403_on_admin_routes(api: FastAPI, conveyor_app: Conveyor,
                                                   method: str, path: str) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(api), base_url="http://api",
                                 headers={"Authorization": f"Bearer {READ}"}) as reader:
        answer = await reader.request(method, path, json={"kwargs": {"x": 1}})
        assert answer.status_code == 403
        assert answer.json()["type"] == "urn:conveyor:problem:forbidden"
        assert (await reader.get("/v1/jobs")).status_code == 200  # reading is fine
    assert (await conveyor_app.backend.list_jobs(JobFilter(), 10)).jobs == []


async def test_open_mode_needs_no_token(conveyor_app: Conveyor) -> None:
    from conveyor.http import create_app
    from tests.http.conftest import settings

    api = create_app(conveyor_app, settings(open=True, tokens={}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(api),
                                 base_url="http://127.0.0.1:8000") as anyone:  # loopback only
        answer = await anyone.post("/v1/tasks/add/jobs", json={"kwargs": {"x": 1}})
    assert answer.status_code == 202

