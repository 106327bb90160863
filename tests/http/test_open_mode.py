"""Open mode (`conveyor dev`: no tokens) keeps other web pages out: a cross-origin POST
(CSRF), a body a page can send without a preflight (a form, text/plain) and a request
under another host name (DNS rebinding) are refused, and nothing is stored; the
developer's own curl and same-origin pages go on working."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from conveyor import Conveyor
from conveyor.backends.base import JobFilter
from conveyor.http import create_app
from tests.http import http_app
from tests.http.conftest import ADMIN, settings


@pytest.fixture
async def dev(conveyor_app: Conveyor) -> AsyncIterator[httpx.AsyncClient]:
    api = create_app(conveyor_app, settings(tokens={}, open=True,
                                            allowed_hosts=("dev.box",)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(api),
                                 base_url="http://127.0.0.1:8000") as client:
        yield client


async def count(app: Conveyor) -> int:
    return len((await app.backend.list_jobs(JobFilter(), 1000, None)).jobs)


ENQUEUE = "/v1/tasks/add/jobs"
BODY = b'{"kwargs": {"x": 1}}'


@pytest.mark.parametrize("headers", [
    {"Origin": "http://evil.example", "Content-Type": "application/json"},
    {"Origin": "null", "Content-Type": "application/json"},
    {"Origin": "http://127.0.0.1:9999", "Content-Type": "application/json"},
    {"Sec-Fetch-Site": "cross-site", "Content-Type": "application/json"},
    {"Sec-Fetch-Site": "same-site", "Content-Type": "application/json"},
], ids=["other-site", "null-origin", "other-port", "cross-site", "same-site"])
async def test_a_cross_origin_enqueue_is_refused(
        dev: httpx.AsyncClient, conveyor_app: Conveyor, headers: dict[str, str]) -> None:
    answer = await dev.post(ENQUEUE, content=BODY, headers=headers)
    assert answer.status_code == 403, answer.text
    assert answer.json()["type"].endswith("cross-origin")
    assert await count(conveyor_app) == 0


async def test_a_cross_origin_cancel_is_refused(
        dev: httpx.AsyncClient, conveyor_app: Conveyor) -> None:
    job = await http_app.add.aenqueue(x=1)
    answer = await dev.post(f"/v1/jobs/{job.id}/cancel",
                            headers={"Origin": "https://evil.example"})
    assert answer.status_code == 403
    assert (await conveyor_app.aget_job(job.id)).job.state.value == "waiting"


@pytest.mark.parametrize("kw", [
    {"content": BODY, "headers": {"Content-Type": "text/plain"}},
    {"data": {"kwargs": "x"}},  # a form
    {"content": BODY, "headers": {"Content-Type": ""}},
    {"content": BODY},  # no Content-Type at all
], ids=["text-plain", "form", "empty-type", "no-type"])
async def test_a_body_that_is_not_declared_json_is_refused(
        dev: httpx.AsyncClient, conveyor_app: Conveyor, kw: dict[str, Any]) -> None:
    request = dev.build_request("POST", ENQUEUE, **kw)
    if "content-type" in request.headers and not request.headers["content-type"]:
        del request.headers["content-type"]
    answer = await dev.send(request)
    assert answer.status_code == 415, answer.text
    assert await count(conveyor_app) == 0


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "10.0.0.7:8000",
                                  "127.0.0.1.evil.example"])
async def test_a_foreign_host_is_refused_dns_rebinding(
        dev: httpx.AsyncClient, conveyor_app: Conveyor, host: str) -> None:
    await http_app.add.aenqueue(x=1)
    listing = await dev.get("/v1/jobs", headers={"Host": host})
    assert listing.status_code == 403 and listing.json()["type"].endswith("foreign-host")
    page = await dev.get("/dashboard/", headers={"Host": host})
    assert page.status_code == 403
    enqueue = await dev.post(ENQUEUE, content=BODY, headers={
        "Host": host, "Content-Type": "application/json", "Origin": f"http://{host}"})
    assert enqueue.status_code == 403
    assert await count(conveyor_app) == 1


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost:8000", "[::1]:8000",
                                  "LOCALHOST", "dev.box:8000"])
async def test_this_machines_names_and_allowed_hosts_are_served(
        dev: httpx.AsyncClient, host: str) -> None:
    answer = await dev.get("/v1/jobs", headers={"Host": host})
    assert answer.status_code == 200


async def test_curl_and_same_origin_pages_still_enqueue(
        dev: httpx.AsyncClient, conveyor_app: Conveyor) -> None:
    curl = await dev.post(ENQUEUE, content=BODY, headers={"Content-Type": "application/json"})
    empty = await dev.post("/v1/tasks/nothing/jobs")  # no body: nothing to declare
    page = await dev.post(ENQUEUE, content=BODY, headers={
        "Content-Type": "application/json", "Origin": "http://127.0.0.1:8000",
        "Sec-Fetch-Site": "same-origin"})
    assert [curl.status_code, empty.status_code, page.status_code] == [202, 202, 202]
    assert await count(conveyor_app) == 3


async def test_with_tokens_the_guard_is_not_in_the_way(
        client: httpx.AsyncClient, conveyor_app: Conveyor) -> None:
    """A token is the protection then: a browser never sends one by itself."""
    answer = await client.post(ENQUEUE, content=BODY, headers={
        "Content-Type": "application/json", "Origin": "https://app.example",
        "Host": "jobs.example", "Authorization": f"Bearer {ADMIN}"})
    assert answer.status_code == 202
