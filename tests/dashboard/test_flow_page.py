"""The dashboard's flow page, in process: every job of a flow with its state, what it
waits for and links; a job's page links to its flow and says what it waits for."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from conveyor import Conveyor, chain
from conveyor.http import create_app
from tests.dashboard.conftest import Browserish, settings
from tests.flows import flow_app as fa
from tests.redis_server import unique_url


@pytest.fixture(params=["sqlite", "redis"])
async def app(request: pytest.FixtureRequest, tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Conveyor]:
    url = f"sqlite:///{tmp_path}/flows.db" if request.param == "sqlite" \
        else unique_url(request.getfixturevalue("redis_server"))
    monkeypatch.setenv("CONVEYOR_URL", url)
    fa.app.use(url)
    await fa.app.aopen()
    yield fa.app
    await fa.app.aclose()


@pytest.fixture
async def tab(app: Conveyor) -> AsyncIterator[Browserish]:
    api = create_app(app, settings())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(api),
                                 base_url="http://dash.test") as client:
        browser = Browserish(client, "/dashboard")
        await browser.login("rui", "rui-password")
        yield browser


async def test_the_flow_page_lists_jobs_states_and_what_they_wait_for(
        app: Conveyor, tab: Browserish) -> None:
    handles = await chain(fa.number.prepare(1), fa.add.prepare(2), fa.add.prepare(3),
                          pass_result=True).aenqueue(app)
    flow_id = handles[0].job.flow_id
    page = await tab.get(f"/flows/{flow_id}")
    assert page.status_code == 200
    for h in handles:
        assert f'data-job="{h.id}"' in page.text
    assert page.text.count("1 of 1 dependencies left") == 2
    assert "s-waiting-children" in page.text and "running" in page.text
    job_page = await tab.get(f"/jobs/{handles[1].id}")
    assert f'/flows/{flow_id}"' in job_page.text
    assert "1 of 1 dependencies left" in job_page.text
    assert (await tab.get("/flows/nope")).status_code == 404
