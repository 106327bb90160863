"""The dashboard's Limits page and a held job's page, in process: use per key and
blocked counts, an admin's change and reset (CSRF-checked forms), a read-only user who
sees no form and whose POST is refused, and the job page saying why a job waits; on
every backend with flow control."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from conveyor.http import create_app
from tests import flow_app
from tests.dashboard.conftest import Browserish, settings
from tests.redis_server import unique_url


@pytest.fixture(params=["sqlite", "redis"])
async def held(request: pytest.FixtureRequest, tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[flow_app.Held]:
    url = f"sqlite:///{tmp_path}/limits.db" if request.param == "sqlite" \
        else unique_url(request.getfixturevalue("redis_server"))
    monkeypatch.setenv("CONVEYOR_URL", url)
    flow_app.app.use(url)
    await flow_app.app.aopen()
    if not flow_app.app.backend.capabilities.flow_control:
        await flow_app.app.aclose()
        pytest.skip("backend without flow control")
    yield await flow_app.hold_one(flow_app.app)
    await flow_app.app.aclose()


@pytest.fixture
async def tabs(held: flow_app.Held) -> AsyncIterator[list[Browserish]]:
    """A signed-in admin tab and a read-only one."""
    api = create_app(flow_app.app, settings())
    clients = [httpx.AsyncClient(transport=httpx.ASGITransport(api), base_url="http://dash.test")
               for _ in range(2)]
    admin, reader = (Browserish(c, "/dashboard") for c in clients)
    await admin.login("ana", "ana-password")
    await reader.login("rui", "rui-password")
    yield [admin, reader]
    for c in clients:
        await c.aclose()


def section(html: str, limit: str) -> str:
    start = html.index(f'data-limit="{limit}"')
    end = html.find("</section>", start)
    return html[start:end]


async def test_the_limits_page_shows_use_per_key_and_blocked_jobs(
        tabs: list[Browserish]) -> None:
    admin, _ = tabs
    page = await admin.get("/limits")
    assert page.status_code == 200
    ask = section(page.text, "llm/task:ask")
    assert '<strong class="rate">100/m</strong>' in ask
    assert '<strong class="concurrency">1</strong>' in ask
    assert '<span class="active-total">2</span> running' in ask
    assert "1</span> waiting held back" in ask
    assert ask.index('data-key="acme"') < ask.index('data-key="globex"')  # most blocked first
    assert 'name="rate"' in ask and 'name="csrf"' in ask
    assert "<strong class=\"rate\">10/s</strong>" in section(page.text, "mail/queue")


async def test_an_admin_changes_and_resets_a_limit(tabs: list[Browserish],
                                                  held: flow_app.Held) -> None:
    admin, _ = tabs
    await admin.get("/limits")
    done = await admin.post("/limits/llm/task%3Aask/set", {"rate": "5/s", "concurrency": "2"})
    assert done.status_code == 303
    page = (await admin.get("/limits")).text
    assert "Changed task:ask of queue llm: rate 5/s, concurrency 2" in page
    assert "changed at runtime" in section(page, "llm/task:ask")
    assert flow_app.app.limits.get("task:ask").override == {"rate": [5, 1000],
                                                           "concurrency": 2}
    bad = await admin.post("/limits/llm/task%3Aask/set", {"rate": "100/x"})
    assert bad.status_code == 303
    assert "is not a rate like" in (await admin.get("/limits")).text
    await admin.post("/limits/llm/task%3Aask/reset")
    page = (await admin.get("/limits")).text
    assert "Reset task:ask of queue llm" in page
    assert flow_app.app.limits.get("task:ask").override is None


async def test_a_reader_sees_no_form_and_the_server_refuses_a_change(
        tabs: list[Browserish]) -> None:
    _, reader = tabs
    page = (await reader.get("/limits")).text
    assert "llm" in page and 'name="rate"' not in page and "Reset</button>" not in page
    refused = await reader.post("/limits/llm/task%3Aask/set", {"concurrency": "9"})
    assert refused.status_code == 403 and "read-only" in refused.text
    assert flow_app.app.limits.get("task:ask").override is None


async def test_a_change_without_the_csrf_token_is_refused(tabs: list[Browserish]) -> None:
    admin, _ = tabs
    refused = await admin.post("/limits/llm/task%3Aask/set", {"concurrency": "9"},
                               csrf="forged")
    assert refused.status_code == 403 and "CSRF" in refused.text
    assert flow_app.app.limits.get("task:ask").override is None


async def test_the_job_page_says_why_a_job_waits(tabs: list[Browserish],
                                                 held: flow_app.Held) -> None:
    admin, _ = tabs
    page = (await admin.get(f"/jobs/{held.blocked}")).text
    assert "Why it is not running" in page
    assert "concurrency full (task:ask key &#39;acme&#39;, 1/1)" in page
    running = (await admin.get(f"/jobs/{held.running}")).text
    assert "Why it is not running" not in running
