"""Server-Sent Events, read with an independent client (httpx-sse): the events a client
sees, across a disconnect and a Last-Event-ID resume, are exactly the events the backend
recorded; streams close after the final state; one backend reader serves every stream."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from httpx_sse import ServerSentEvent, aconnect_sse

from conveyor import Conveyor, JobFilter
from conveyor.testing import adrain
from conveyor.web.hub import EventHub
from tests.helpers import SwallowingCall, WorkerProcess
from tests.http.conftest import ADMIN, HTTP_APP, ServeProcess

AUTH = {"Authorization": f"Bearer {ADMIN}"}


def recorded(events: list[Any]) -> list[tuple[int, str, Any]]:
    return [(e.id, e.kind, e.data) for e in events]


def seen(events: list[ServerSentEvent]) -> list[tuple[int, str, Any]]:
    out = []
    for e in events:
        data = json.loads(e.data)
        assert data["id"] == int(e.id) and data["kind"] == e.event
        out.append((int(e.id), e.event, data["data"]))
    return out


async def read(client: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None,
               until: Callable[[list[ServerSentEvent]], bool] | None = None
               ) -> list[ServerSentEvent]:
    """Events of one connection, until the server closes it or `until` says stop."""
    got: list[ServerSentEvent] = []
    async with aconnect_sse(client, "GET", url, headers=headers or {}) as source:
        assert source.response.headers["content-type"].startswith("text/event-stream")
        async for event in source.aiter_sse():
            got.append(event)
            if until is not None and until(got):
                break
    return got


async def test_disconnect_and_resume_sees_exactly_the_recorded_events(
        conveyor_app: Conveyor, store_url: str, serve: Callable[..., ServeProcess]) -> None:
    server = serve(store_url)
    worker = WorkerProcess(store_url, "-q", "reports", app=HTTP_APP)
    try:
        async with httpx.AsyncClient(base_url=server.base, headers=AUTH, timeout=30) as client:
            accepted = await client.post("/v1/tasks/report/jobs",
                                         json={"kwargs": {"steps": 12, "pause": 0.1}})
            events_url = accepted.json()["events_url"]

            def progressed(events: list[ServerSentEvent]) -> bool:
                return sum(e.event == "progress" for e in events) >= 3

            first = await read(client, events_url, until=progressed)
            assert first[0].event == "snapshot"
            snapshot = json.loads(first[0].data)
            assert snapshot["id"] == accepted.json()["id"] and snapshot["done"] is False
            await asyncio.sleep(0.4)  # events go on while nobody listens
            second = await read(client, events_url, {"Last-Event-ID": first[-1].id})
    finally:
        worker.stop()
    assert second[-1].event == "completed"  # the stream ends after the final state
    got = seen(first[1:]) + seen(second)
    job_id = accepted.json()["id"]
    expected = recorded(await conveyor_app.backend.events(after=int(first[0].id),
                                                          job_id=job_id))
    assert got == expected  # no loss, no duplicate, same order
    kinds = [kind for _, kind, _ in got]
    assert kinds.count("progress") == 12 and kinds.count("log") == 12
    assert [d["progress"]["step"] for _, k, d in got if k == "progress"] == list(range(1, 13))


async def test_last_event_id_zero_replays_the_whole_history(
        client: httpx.AsyncClient, conveyor_app: Conveyor) -> None:
    accepted = (await client.post("/v1/tasks/report/jobs",
                                  json={"kwargs": {"steps": 3, "pause": 0}})).json()
    await adrain(conveyor_app, ["reports"])
    by_header = await read(client, accepted["events_url"], {"Last-Event-ID": "0"})
    by_query = await read(client, accepted["events_url"] + "?last_event_id=0")
    expected = recorded(await conveyor_app.backend.events(job_id=accepted["id"]))
    assert seen(by_header) == seen(by_query) == expected
    assert expected[0][1] == "waiting" and expected[-1][1] == "completed"
    assert by_header[0].retry == 3000  # the reconnection delay, sent once


async def test_a_finished_job_gets_its_snapshot_and_the_stream_closes(
        client: httpx.AsyncClient, conveyor_app: Conveyor) -> None:
    accepted = (await client.post("/v1/tasks/add/jobs", json={"kwargs": {"x": 1}})).json()
    await adrain(conveyor_app, ["default"])
    [snapshot] = await read(client, accepted["events_url"])
    data = json.loads(snapshot.data)
    assert snapshot.event == "snapshot" and data["state"] == "completed" and data["result"] == 1
    # resuming after the final event: nothing more, and the stream still ends
    last = (await conveyor_app.backend.events(job_id=accepted["id"]))[-1].id
    assert await read(client, accepted["events_url"], {"Last-Event-ID": str(last)}) == []


async def test_one_backend_reader_serves_a_thousand_subscriptions(
        conveyor_app: Conveyor) -> None:
    backend = conveyor_app.backend
    reads = 0
    real_events = backend.events

    async def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal reads
        reads += 1
        return await real_events(*args, **kwargs)

    backend.events = counting  # type: ignore[method-assign]
    hub = EventHub(conveyor_app, min_interval=0.02, max_interval=0.05)
    try:
        watched = await conveyor_app.tasks["add"].aenqueue(x=1)
        subs = [await hub.subscribe(job_id=f"job-{i}") for i in range(999)]
        mine = await hub.subscribe(job_id=watched.id)
        wide = await hub.subscribe(queue="default")
        assert hub.subscribers == 1001
        before = reads
        started = time.monotonic()
        await adrain(conveyor_app, ["default"])
        got: list[Any] = []
        while not any(e.kind == "completed" for e in got):
            got += await mine.get(timeout=5)
        elapsed = time.monotonic() - started
        # one read per tick whatever the number of listeners (ticks are >= 20 ms apart)
        assert reads - before <= elapsed / 0.02 + 2
        assert [e.kind for e in got] == ["active", "completed"]
        assert all(e.job_id == watched.id for e in got)
        assert [e.kind for e in await wide.get(timeout=1)][-2:] == ["active", "completed"]
        assert [await s.get(timeout=0) for s in subs[:10]] == [[]] * 10
        for sub in [*subs, mine, wide]:
            hub.unsubscribe(sub)
        assert hub.subscribers == 0
    finally:
        await hub.aclose()
        backend.events = real_events  # type: ignore[method-assign]


async def test_a_slow_subscriber_that_overflows_is_told_to_catch_up(
        conveyor_app: Conveyor) -> None:
    hub = EventHub(conveyor_app, buffer=2)
    try:
        sub = await hub.subscribe()
        for i in range(3):
            await conveyor_app.tasks["add"].aenqueue(x=i)
        for _ in range(100):
            if sub.overflowed:
                break
            await asyncio.sleep(0.02)
        assert sub.overflowed
        assert await sub.get(timeout=0) == []  # catch up from the backend instead
        sub.recovered()
        await conveyor_app.tasks["add"].aenqueue(x=9)
        assert [e.kind for e in await sub.get(timeout=5)] == ["waiting"]
    finally:
        await hub.aclose()


async def test_global_stream_follows_one_queue_and_heartbeats(
        conveyor_app: Conveyor, serve: Callable[..., ServeProcess]) -> None:
    store_url = conveyor_app.url
    server = serve(store_url, env={"CONVEYOR_SSE_HEARTBEAT": "0.2"})
    lines: list[str] = []
    async with httpx.AsyncClient(base_url=server.base, headers=AUTH, timeout=30) as client:
        async with client.stream("GET", "/v1/events", params={"queue": "reports"}) as stream:
            report = await client.post("/v1/tasks/report/jobs",
                                       json={"kwargs": {"steps": 2, "pause": 0}})
            await client.post("/v1/tasks/add/jobs", json={"kwargs": {"x": 1}})
            worker = WorkerProcess(store_url, "-q", "reports,default", app=HTTP_APP)
            try:
                async for line in stream.aiter_lines():
                    lines.append(line)
                    if line == "event: completed":
                        break
                    assert len(lines) < 500
            finally:
                worker.stop()
        quiet = await client.get(report.json()["status_url"])
        assert quiet.json()["state"] == "completed"
        async with client.stream("GET", "/v1/events", params={"queue": "empty"}) as stream:
            start = time.monotonic()
            beats = 0
            async for line in stream.aiter_lines():
                beats += line == ": heartbeat"
                if beats == 2 or time.monotonic() - start > 5:
                    break
            assert beats == 2
    data = [json.loads(line[6:]) for line in lines if line.startswith("data: ")]
    assert data[0] == {"cursor": data[0]["cursor"]}  # the "ready" event: a resume point
    assert {d["queue"] for d in data[1:]} == {"reports"}
    assert {d["job_id"] for d in data[1:]} == {report.json()["id"]}
    assert data[1]["kind"] == "waiting"


async def test_server_shutdown_ends_open_streams(conveyor_app: Conveyor,
                                                 serve: Callable[..., ServeProcess]) -> None:
    server = serve(conveyor_app.url)
    async with httpx.AsyncClient(base_url=server.base, headers=AUTH, timeout=30) as client:
        delayed = await client.post("/v1/tasks/add/jobs", json={"kwargs": {"x": 1},
                                                                "options": {"delay": "1h"}})
        async with client.stream("GET", delayed.json()["events_url"]) as stream:
            lines = stream.aiter_lines()
            assert await anext(lines) == "retry: 3000"
            server.proc.send_signal(signal.SIGTERM)
            started = time.monotonic()
            rest = [line async for line in lines]
    assert time.monotonic() - started < 5  # not held up by the open stream
    assert any(line.startswith("event: snapshot") for line in rest)
    assert server.proc.wait(10) == 0


async def test_a_stream_ends_when_its_job_is_removed(
        conveyor_app: Conveyor, serve: Callable[..., ServeProcess]) -> None:
    server = serve(conveyor_app.url, env={"CONVEYOR_SSE_HEARTBEAT": "0.2"})
    async with httpx.AsyncClient(base_url=server.base, headers=AUTH, timeout=30) as client:
        delayed = (await client.post("/v1/tasks/add/jobs", json={
            "kwargs": {"x": 1}, "options": {"delay": "1h"}})).json()
        async with client.stream("GET", delayed["events_url"]) as stream:
            lines = stream.aiter_lines()
            assert await anext(lines) == "retry: 3000"
            assert (await client.delete(delayed["status_url"])).status_code == 204
            started = time.monotonic()
            rest = [line async for line in lines]  # ends: removal writes no event
    assert time.monotonic() - started < 5
    assert "event: snapshot" in rest and not any(line.startswith("event: c") for line in rest)


async def test_a_hub_that_cannot_read_refuses_subscribers_and_stops(tmp_path: Any) -> None:
    from conveyor import BackendUnavailableError

    hub = EventHub(Conveyor(f"sqlite:///{tmp_path}/no-such-folder/x.db"))
    try:
        started = time.monotonic()
        try:
            await hub.subscribe(timeout=0.3)
        except BackendUnavailableError:
            pass
        else:
            raise AssertionError("subscribed to an unreadable backend")
        assert time.monotonic() - started < 2
        for _ in range(50):  # nobody is waiting any more: the tail gives up
            if hub._task is None or hub._task.done():
                break
            await asyncio.sleep(0.05)
        assert hub._task is not None and hub._task.done()
    finally:
        await hub.aclose()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("retry", [0.0, 3600.0], ids=["call-returns", "call-retries"])
async def test_closing_the_hub_stops_its_reader_though_a_read_swallowed_the_cancel(
        conveyor_app: Conveyor, monkeypatch: pytest.MonkeyPatch, retry: float) -> None:
    """As redis-py 8.1's asyncio client sometimes does inside a call. call-returns: the
    reader loops on as if nothing happened; call-retries: the read itself goes on."""
    hub = EventHub(conveyor_app)
    try:
        sub = await hub.subscribe()
        backend = conveyor_app.backend
        read = SwallowingCall(backend.events, "conveyor-event-hub", retry=retry)
        monkeypatch.setattr(backend, "events", read)
        await read.entered.wait()
    finally:
        await hub.aclose()
    assert read.swallowed and sub.closed
    assert hub._task is not None and hub._task.done()


async def test_removed_jobs_are_found_for_all_followers_in_one_query(
        conveyor_app: Conveyor) -> None:
    backend = conveyor_app.backend
    listed: list[set[str]] = []  # the job ids of each listing the hub made
    real_list = backend.list_jobs

    async def recording(where: JobFilter, *args: Any, **kwargs: Any) -> Any:
        listed.append(set(where.ids or ()))
        return await real_list(where, *args, **kwargs)

    backend.list_jobs = recording  # type: ignore[method-assign]
    hub = EventHub(conveyor_app, gone_interval=0.1)
    try:
        add = conveyor_app.tasks["add"].options(delay=3600)
        kept, removed = await add.aenqueue(x=1), await add.aenqueue(x=2)
        followers = [await hub.subscribe(job_id=removed.id) for _ in range(200)]
        others = [await hub.subscribe(job_id=kept.id) for _ in range(200)]
        await backend.remove(JobFilter(ids=(removed.id,)))
        started = time.monotonic()
        while not all(s.gone for s in followers):
            assert time.monotonic() - started < 30
            await asyncio.sleep(0.05)
        assert not any(s.gone for s in others)
        # one listing names every followed job: never one query per follower or per job
        assert listed
        assert all(ids == {kept.id, removed.id} for ids in listed), listed
    finally:
        await hub.aclose()
        backend.list_jobs = real_list  # type: ignore[method-assign]
