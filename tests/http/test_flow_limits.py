"""Flow control over HTTP: /v1/limits lists every limiter with its use and the jobs it
holds back, admins change and reset one (read tokens are refused, nothing changes), bad
specs and unknown names are problems, GET /v1/jobs/{id} says why a job waits, and
/metrics gauges blocked and active jobs per limiter and key with bounded cardinality."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conveyor import Conveyor
from conveyor.backends.base import WorkerInfo
from conveyor.flow.api import store_declared
from conveyor.flow.metrics import TOP_KEYS
from conveyor.http import create_app
from tests import flow_app
from tests.http.conftest import ADMIN, READ, settings

PROMTOOL = shutil.which("promtool")


@pytest.fixture
async def flow(store_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Conveyor]:
    monkeypatch.setenv("CONVEYOR_URL", store_url)
    flow_app.app.use(store_url)
    await flow_app.app.aopen()
    if not flow_app.app.backend.capabilities.flow_control:
        await flow_app.app.aclose()
        pytest.skip("backend without flow control")
    yield flow_app.app
    await flow_app.app.aclose()


@pytest.fixture
async def client(flow: Conveyor) -> AsyncIterator[httpx.AsyncClient]:
    api = create_app(flow, settings())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(api), base_url="http://api",
                                 headers={"Authorization": f"Bearer {ADMIN}"}) as c:
        yield c


def by_name(answer: httpx.Response) -> dict[tuple[str, str], dict[str, Any]]:
    assert answer.status_code == 200, answer.text
    return {(item["queue"], item["name"]): item for item in answer.json()}


async def test_limits_list_their_use_and_the_jobs_they_hold_back(
        client: httpx.AsyncClient, flow: Conveyor) -> None:
    await flow_app.hold_one(flow)
    listed = by_name(await client.get("/v1/limits", headers={"Authorization": f"Bearer {READ}"}))
    assert set(listed) == {("mail", "queue"), ("llm", "task:ask")}
    ask = listed[("llm", "task:ask")]
    assert (ask["scope"], ask["rate"], ask["concurrency"]) == ("task", "100/m", 1)
    assert ask["declared"] == {"rate": "100/m", "concurrency": 1} and ask["override"] is None
    assert (ask["active"], ask["blocked"]) == (2, 1)
    keys = {k["key"]: k for k in ask["keys"]}
    assert keys["acme"]["active"] == 1 and keys["acme"]["starts"] == 1
    assert keys["acme"]["blocked"] == 1 and keys["globex"]["blocked"] == 0
    assert ask["keys"][0]["key"] == "acme"  # the most blocked first
    assert listed[("mail", "queue")]["scope"] == "queue"
    only = (await client.get("/v1/limits", params={"queue": "mail"})).json()
    assert [i["name"] for i in only] == ["queue"]
    one = await client.get("/v1/limits/task:ask")
    assert one.status_code == 200 and one.json() == ask


async def test_a_waiting_job_says_why_over_http(client: httpx.AsyncClient,
                                                 flow: Conveyor) -> None:
    held = flow_app.hold_one(flow)
    blocked = (await held).blocked
    answer = (await client.get(f"/v1/jobs/{blocked}")).json()
    assert answer["state"] == "waiting"
    [reason] = answer["waiting_reasons"]
    assert reason == {"reason": "concurrency_full", "limiter": "task:ask", "key": "acme",
                      "used": 1, "limit": 1,
                      "detail": "concurrency full (task:ask key 'acme', 1/1)"}
    later = await flow_app.send.options(delay=3600).aenqueue("ana")
    [delayed] = (await client.get(f"/v1/jobs/{later.id}")).json()["waiting_reasons"]
    assert delayed["reason"] == "delayed" and delayed["until"].endswith("Z")
    nobody = await flow_app.send.aenqueue("bo")  # no live worker consumes "mail"
    reasons = (await client.get(f"/v1/jobs/{nobody.id}")).json()["waiting_reasons"]
    assert [r["reason"] for r in reasons] == ["no_worker"]


async def test_an_admin_changes_a_limit_and_resets_it(client: httpx.AsyncClient,
                                                      flow: Conveyor) -> None:
    await flow_app.hold_one(flow)
    changed = await client.patch("/v1/limits/task:ask",
                                 json={"rate_limit": "5/s", "concurrency": 2})
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["rate"], body["concurrency"]) == ("5/s", 2)
    assert body["override"] == {"rate": "5/s", "concurrency": 2}
    # the next claim applies it: acme's second job gets the new second slot
    claimed = (await flow.backend.fetch(["llm"], 10, "w-flow", flow_app.LEASE_MS)).claims
    assert [c.job.kwargs for c in claimed] == [{"tenant": "acme"}]
    off = (await client.patch("/v1/limits/task:ask", json={"rate_limit": "off"})).json()
    assert (off["rate"], off["concurrency"]) == (None, 2)
    reset = await client.delete("/v1/limits/task:ask/override")
    assert reset.status_code == 200
    assert (reset.json()["rate"], reset.json()["concurrency"], reset.json()["override"]) == (
        "100/m", 1, None)


async def test_read_tokens_cannot_change_limits(client: httpx.AsyncClient,
                                                flow: Conveyor) -> None:
    await flow_app.hold_one(flow)
    read = {"Authorization": f"Bearer {READ}"}
    assert (await client.patch("/v1/limits/task:ask", json={"concurrency": 9},
                               headers=read)).status_code == 403
    assert (await client.delete("/v1/limits/task:ask/override",
                                headers=read)).status_code == 403
    assert (await client.get("/v1/limits/task:ask")).json()["override"] is None


@pytest.mark.parametrize(("body", "field"), [
    ({"rate_limit": "100/x"}, "rate_limit"), ({"rate_limit": "0/s"}, "rate_limit"),
    ({"concurrency": 0}, "concurrency"), ({"concurrency": "5"}, "concurrency"),
    ({}, "body"), ({"rate": "1/s"}, "rate"),
])
async def test_a_bad_change_is_422_and_changes_nothing(
        client: httpx.AsyncClient, flow: Conveyor, body: dict[str, Any], field: str) -> None:
    await flow_app.hold_one(flow)
    answer = await client.patch("/v1/limits/task:ask", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert field in answer.text
    assert (await client.get("/v1/limits/task:ask")).json()["override"] is None


async def test_an_unknown_limiter_is_404(client: httpx.AsyncClient, flow: Conveyor) -> None:
    await flow_app.hold_one(flow)
    for answer in (await client.get("/v1/limits/nope"),
                   await client.patch("/v1/limits/nope", json={"concurrency": 2}),
                   await client.delete("/v1/limits/nope/override"),
                   await client.get("/v1/limits/queue", params={"queue": "elsewhere"})):
        assert answer.status_code == 404, answer.text
        assert answer.json()["type"].endswith("unknown-limiter")
    several = await client.patch("/v1/limits/queue", json={"concurrency": 2})
    assert several.status_code == 200  # one queue has its own limits: the name is unique


def samples(text: str, name: str) -> dict[tuple[str, ...], float]:
    return {tuple(s.labels[k] for k in ("queue", "limiter", "key") if k in s.labels): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
            if s.name == name}


async def test_metrics_gauge_blocked_and_active_jobs_per_limiter_and_key(
        client: httpx.AsyncClient, flow: Conveyor) -> None:
    await flow_app.hold_one(flow)
    text = (await client.get("/metrics")).text
    blocked = samples(text, "conveyor_flow_blocked_jobs")
    assert blocked == {("llm", "task:ask", "acme"): 1, ("llm", "task:ask", "~other"): 0,
                       ("mail", "queue", "~other"): 0}
    active = samples(text, "conveyor_flow_active_jobs")
    assert active[("llm", "task:ask", "acme")] == 1 and active[("llm", "task:ask", "globex")] == 1
    assert samples(text, "conveyor_flow_limit_concurrency") == {("llm", "task:ask"): 1}
    assert samples(text, "conveyor_flow_limit_rate_per_second") == {
        ("llm", "task:ask"): pytest.approx(100 / 60), ("mail", "queue"): 10}
    if PROMTOOL is not None:
        checked = await asyncio.to_thread(subprocess.run, [PROMTOOL, "check", "metrics"],
                                          input=text, text=True, capture_output=True)
        assert "conveyor_flow" not in checked.stdout + checked.stderr


async def test_metrics_keep_the_top_keys_and_sum_the_rest(
        client: httpx.AsyncClient, flow: Conveyor) -> None:
    await store_declared(flow)
    tenants = [f"t{i:02}" for i in range(TOP_KEYS + 5)]
    for tenant in tenants:  # each tenant: one job runs, 1 + its number wait behind it
        for _ in range(2 + int(tenant[1:])):
            await flow_app.ask.aenqueue(tenant)
    await flow.backend.heartbeat(WorkerInfo("w", "h", 1, ("llm",), 100), [], 60_000)
    assert len((await flow.backend.fetch(["llm"], 100, "w", 60_000)).claims) == len(tenants)
    assert (await flow.backend.fetch(["llm"], 100, "w", 60_000)).claims == []
    blocked = samples((await client.get("/metrics")).text, "conveyor_flow_blocked_jobs")
    mine = {key: n for (_, limiter, key), n in blocked.items() if limiter == "task:ask"}
    assert len(mine) == TOP_KEYS + 1
    assert min(v for k, v in mine.items() if k != "~other") == 1 + 5  # t05 and up are kept
    assert mine["~other"] == sum(1 + i for i in range(5))  # t00..t04, summed
