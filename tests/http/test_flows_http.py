"""/v1/flows: submitting a flow of exposed tasks (all or nothing, Idempotency-Key),
following it, running it, cancelling it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from conveyor import Conveyor, JobState
from conveyor.testing import adrain

FLOW = {"jobs": [
    {"ref": "a", "task": "add", "kwargs": {"x": 1}},
    {"ref": "b", "task": "add", "kwargs": {"x": 10}, "after": ["a"], "pass_result": "y"},
    {"ref": "c", "task": "add", "kwargs": {"x": 100}, "after": ["a", "b"],
     "on_failure": "continue"},
]}


async def test_a_submitted_flow_runs_in_order_and_reads_back(
        client: httpx.AsyncClient, conveyor_app: Conveyor) -> None:
    r = await client.post("/v1/flows", json=FLOW)
    assert r.status_code == 202, r.text
    body = r.json()
    assert r.headers["location"].endswith(f"/v1/flows/{body['id']}")
    assert [j["state"] for j in body["jobs"]] == ["waiting", "waiting-children",
                                                   "waiting-children"]
    assert body["jobs"][2]["waiting_for"] == "2 of 2 dependencies left"
    a, b, c = (j["id"] for j in body["jobs"])
    assert {(e["from"], e["to"]) for e in body["edges"]} == {(a, b), (a, c), (b, c)}
    status = (await client.get(f"/v1/jobs/{c}")).json()
    [reason] = status["waiting_reasons"]
    assert (reason["reason"], reason["detail"]) == ("waiting_children",
                                                    "2 of 2 dependencies left")
    await adrain(conveyor_app, timeout=20)
    r = await client.get(f"/v1/flows/{body['id']}")
    assert r.status_code == 200
    assert r.json()["state"] == "completed"
    assert (await conveyor_app.aget_job(b)).job.result == 11


@pytest.mark.parametrize(("change", "says"), [
    ({"task": "nope"}, "no task 'nope' is exposed"),
    ({"task": "internal", "kwargs": {"secret": "s"}}, "no task 'internal' is exposed"),
    ({"after": ["zz"]}, "not an earlier job"),
    ({"kwargs": {"x": "not a number"}}, "x"),
    ({"pass_result": "missing"}, "no parameter 'missing'"),
])
async def test_a_bad_flow_is_refused_and_nothing_is_stored(
        client: httpx.AsyncClient, conveyor_app: Conveyor, change: dict[str, Any],
        says: str) -> None:
    jobs = [dict(j) for j in FLOW["jobs"]]
    jobs[1].update(change)
    r = await client.post("/v1/flows", json={"jobs": jobs})
    assert r.status_code == 422, r.text
    assert says in r.text
    assert await conveyor_app.backend.queues() == []


async def test_an_idempotency_key_answers_the_first_flow_again(
        client: httpx.AsyncClient, conveyor_app: Conveyor) -> None:
    headers = {"Idempotency-Key": "order-42"}
    first = await client.post("/v1/flows", json=FLOW, headers=headers)
    again = await client.post("/v1/flows", json=FLOW, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    [info] = await conveyor_app.backend.queues()
    assert sum(info.counts.values()) == 3
    other = {"jobs": FLOW["jobs"][:1]}
    r = await client.post("/v1/flows", json=other, headers=headers)
    assert r.status_code == 422 and "idempotency-key-reused" in r.text


async def test_cancelling_a_flow_over_http(client: httpx.AsyncClient,
                                           conveyor_app: Conveyor) -> None:
    flow_id = (await client.post("/v1/flows", json=FLOW)).json()["id"]
    r = await client.post(f"/v1/flows/{flow_id}/cancel")
    assert r.status_code == 200 and len(r.json()["cancelled"]) == 3
    assert r.json()["state"] == "cancelled"
    jobs = await conveyor_app.backend.flow_jobs(flow_id)
    assert {j.state for j in jobs} == {JobState.CANCELLED}
    assert (await client.get("/v1/flows/nope")).status_code == 404


async def test_a_flows_events_stream_until_the_whole_flow_has_ended(
        client: httpx.AsyncClient, conveyor_app: Conveyor, api: FastAPI) -> None:
    flow_id = (await client.post("/v1/flows", json=FLOW)).json()["id"]
    hub = api.state.hub
    listening = hub.subscribers

    async def read() -> list[tuple[str, Any]]:
        frames: list[tuple[str, Any]] = []
        async with client.stream("GET", f"/v1/flows/{flow_id}/events") as r:
            assert r.status_code == 200
            kind = None
            async for line in r.aiter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    frames.append((kind or "", json.loads(line[6:])))
        return frames

    async def subscribed() -> None:  # the stream listens before the work starts
        while hub.subscribers == listening:
            await asyncio.sleep(0)

    reading = asyncio.ensure_future(read())
    await asyncio.wait_for(subscribed(), 10)
    await adrain(conveyor_app, timeout=20)
    frames = await asyncio.wait_for(reading, 30)
    assert frames[0][0] == "flow" and frames[0][1]["state"] == "running"
    assert frames[-1][0] == "flow" and frames[-1][1]["state"] == "completed"
    completed = [f for k, f in frames if k == "completed"]
    assert len(completed) == 3
    assert (await client.get("/v1/flows/nope/events")).status_code == 404
