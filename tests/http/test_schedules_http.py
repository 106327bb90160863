"""/v1/schedules over HTTP: read with a read token, change with an admin token, problem
answers for bad input (nothing stored)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from conveyor import Conveyor
from conveyor.http import create_app
from conveyor.schedules import enable

from .conftest import ADMIN, READ, settings

PROBLEM = "application/problem+json"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = Conveyor(f"sqlite:///{tmp_path}/s.db")

    @app.task
    def report(user_id: int) -> int:
        return user_id

    enable(app)
    api = create_app(app, settings())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(api),
                                 base_url="http://api") as c:
        yield c
    await app.aclose()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_admin_creates_pauses_resumes_triggers_and_deletes(
        client: httpx.AsyncClient) -> None:
    body = {"name": "nightly", "task": "report", "cron": "0 3 * * *", "tz": "Europe/Lisbon",
            "kwargs": {"user_id": 7}}
    created = await client.post("/v1/schedules", json=body, headers=auth(ADMIN))
    assert created.status_code == 201, created.text
    assert created.json()["expression"] == "0 3 * * *" and created.json()["next_run_at"]
    again = await client.post("/v1/schedules", json=body, headers=auth(ADMIN))
    assert again.status_code == 409 and again.headers["content-type"] == PROBLEM
    listed = await client.get("/v1/schedules", headers=auth(READ))
    assert [s["name"] for s in listed.json()] == ["nightly"]
    paused = await client.post("/v1/schedules/nightly/pause", headers=auth(ADMIN))
    assert paused.json()["paused"] is True and paused.json()["next_run_at"] is None
    resumed = await client.post("/v1/schedules/nightly/resume", headers=auth(ADMIN))
    assert resumed.json()["paused"] is False
    triggered = await client.post("/v1/schedules/nightly/trigger", headers=auth(ADMIN))
    assert triggered.status_code == 202
    job = await client.get(triggered.headers["Location"], headers=auth(READ))
    assert job.status_code == 200 and job.json()["id"] == triggered.json()["id"]
    one = await client.get("/v1/schedules/nightly", headers=auth(READ))
    assert one.json()["last_job_id"] == triggered.json()["id"]
    changed = await client.patch("/v1/schedules/nightly", json={"every": "10m"},
                                 headers=auth(ADMIN))
    assert changed.status_code == 200 and changed.json()["expression"] == "every 10m"
    gone = await client.delete("/v1/schedules/nightly", headers=auth(ADMIN))
    assert gone.status_code == 204
    missing = await client.get("/v1/schedules/nightly", headers=auth(READ))
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM


async def test_read_tokens_cannot_change_schedules(client: httpx.AsyncClient) -> None:
    body = {"name": "s", "task": "report", "every": "1m", "kwargs": {"user_id": 1}}
    assert (await client.post("/v1/schedules", json=body, headers=auth(ADMIN))).status_code \
        == 201
    for method, path in [("POST", "/v1/schedules"), ("POST", "/v1/schedules/s/pause"),
                         ("POST", "/v1/schedules/s/resume"), ("POST", "/v1/schedules/s/trigger"),
                         ("PATCH", "/v1/schedules/s"), ("DELETE", "/v1/schedules/s")]:
        answer = await client.request(method, path, headers=auth(READ),
                                      json=body if method != "DELETE" else None)
        assert answer.status_code == 403, (method, path)
        assert answer.headers["content-type"] == PROBLEM
    assert (await client.get("/v1/schedules")).status_code == 401
    [stored] = (await client.get("/v1/schedules", headers=auth(READ))).json()
    assert stored["paused"] is False and stored["last_job_id"] is None


@pytest.mark.parametrize(("body", "status", "says"), [
    ({"cron": "99 * * * *"}, 422, "bad cron expression"),
    ({"cron": "0 9 * * *", "tz": "Nowhere/Land"}, 422, "unknown time zone"),
    ({"every": "1m", "kwargs": {"nobody": 1}}, 422, ""),
    ({"every": "1m", "overlap": "sometimes"}, 422, "overlap must be one of"),
    ({"every": "1m", "task": "missing"}, 404, "unknown task"),
])
async def test_bad_schedules_are_problems_and_nothing_is_stored(
        client: httpx.AsyncClient, body: dict[str, object], status: int, says: str) -> None:
    full = {"name": "bad", "task": "report", "kwargs": {"user_id": 1}, **body}
    answer = await client.post("/v1/schedules", json=full, headers=auth(ADMIN))
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == PROBLEM and says in answer.json()["detail"]
    assert (await client.get("/v1/schedules", headers=auth(READ))).json() == []
