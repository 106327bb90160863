"""The plugin protocol, exercised by a third-party-style plugin (seams_app.Tagging): its
option, leader duty, event subscriber and middleware work with no change to the core."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from conveyor import Conveyor, Plugin
from conveyor.errors import ConfigurationError, InvalidOptionError
from conveyor.http import create_app
from conveyor.testing import drain
from tests.seams import seams_app
from tests.seams.conftest import journal


def test_a_plugin_option_is_validated_and_reaches_the_job(seams: Conveyor) -> None:
    job = seams_app.on_loop.options(tag="Blue42").enqueue(n=1)
    assert job.job.meta["tag"] == "blue42"  # what check_option answered is stored
    assert job.job.meta["tagged_by"] == "acme.tagging"  # the plugin's own middleware ran
    drain(seams)
    assert job.result(timeout=30)["tag"] == "blue42"


def test_a_bad_plugin_option_stores_nothing(seams: Conveyor) -> None:
    with pytest.raises(InvalidOptionError, match="tag must be letters and digits"):
        seams_app.on_loop.options(tag="<script>").enqueue(n=1)
    assert all(sum(q.counts.values()) == 0 for q in seams.queues())


def test_options_nobody_owns_are_refused_with_the_plugin_to_install(seams: Conveyor) -> None:
    with pytest.raises(InvalidOptionError, match="unknown option 'colour'"):
        seams_app.on_loop.options(colour="red")
    with pytest.raises(InvalidOptionError,
                       match=r"needs the conveyor.webhooks plugin.*webhooks.enable\(app\)"):
        seams_app.on_loop.options(webhook="https://example.com/hook")


def test_the_leader_runs_the_plugin_duty(seams: Conveyor, tmp_path: Path) -> None:
    before = seams_app.tagging.duty_runs
    seams_app.on_loop.enqueue(n=1)
    drain(seams)  # its keeper holds the maintenance lock and runs the duties
    assert seams_app.tagging.duty_runs > before
    assert any(line.startswith("duty ") for line in journal(tmp_path))


async def test_subscribers_get_every_event_in_order(seams: Conveyor) -> None:
    plugin = seams_app.tagging
    plugin.seen.clear()
    api = create_app(seams)
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        hub = api.state.hub
        hub.start()
        await asyncio.wait_for(hub._ready.wait(), 10)
        job = await seams_app.on_loop.aenqueue(n=5)
        for _ in range(500):
            if any(e.job_id == job.id for e in plugin.seen):
                break
            await asyncio.sleep(0.01)
        assert (await client.get("/healthz")).status_code == 200
        await hub.aclose()
    mine = [e for e in plugin.seen if e.job_id == job.id]
    assert [e.kind for e in mine] == ["waiting"]
    ids = [e.id for e in plugin.seen]
    assert ids == sorted(ids)


class Routed(Plugin):
    name = "acme.routed"
    options: ClassVar[tuple[str, ...]] = ()

    def router(self) -> Any:
        from fastapi import APIRouter

        router = APIRouter()

        @router.get("/acme/ping")
        async def ping() -> dict[str, str]:
            return {"pong": self.name}

        return router


async def test_plugin_routes_are_mounted_under_v1(tmp_path: Path) -> None:
    app = Conveyor(f"sqlite:///{tmp_path}/r.db")
    app.install(Routed())
    api = create_app(app)
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.get("/v1/acme/ping")
        assert answer.json() == {"pong": "acme.routed"}
        # the metrics plugin's route exists (it asks for a token: not open mode)
        assert (await client.get("/metrics")).status_code == 401
    await app.aclose()


def test_plugins_are_checked_when_installed(tmp_path: Path) -> None:
    app = Conveyor(f"sqlite:///{tmp_path}/p.db")

    class Nameless(Plugin):
        pass

    class CoreClash(Plugin):
        name = "clash"
        options = ("priority",)

    class Taker(Plugin):
        name = "taker"
        options = ("tag",)

    with pytest.raises(ConfigurationError, match="has no name"):
        app.install(Nameless())
    with pytest.raises(ConfigurationError, match="'priority' is a core option"):
        app.install(CoreClash())
    app.install(Taker())
    with pytest.raises(ConfigurationError, match="installed already"):
        app.install(Taker())
    with pytest.raises(ConfigurationError, match="belongs to plugin taker"):
        app.install(seams_app.Tagging())


def test_the_hooks_example_runs_as_documented() -> None:
    from examples import hooks

    answer = hooks.main()
    assert answer == {"order": 42, "pool": "a connection pool", "enqueued_by": "web-1"}
