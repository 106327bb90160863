"""conveyor.client against a real server process and a real worker process: submit, wait
over SSE and by polling, failures raised with their error, idempotent keys."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from conveyor import (
    ArgumentsError,
    JobCancelledError,
    JobFailedError,
    JobNotFoundError,
    ResultTimeoutError,
    UnknownTaskError,
)
from conveyor import client as client_mod
from conveyor.client import AsyncClient, Client, RemoteError
from tests.helpers import WorkerProcess
from tests.http.wh_server import ServerProcess
from tests.redis_server import redis_server, unique_url  # noqa: F401 (a session fixture)

TOKENS = "admin:client-admin,read:client-reader"


# One server and one worker per backend for the whole module: starting them is the slow
# part, and every test works on jobs of its own.
@pytest.fixture(scope="module", params=["sqlite", "redis"])
def url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "redis":
        return unique_url(request.getfixturevalue("redis_server"))
    return f"sqlite:///{tmp_path_factory.mktemp('client')}/jobs.db"


@pytest.fixture(scope="module")
def server(url: str) -> Iterator[ServerProcess]:
    worker = WorkerProcess(url, "-q", "work", app="tests.http.wh_app:app")
    try:
        with ServerProcess(url, "tests.http.wh_serve:api", tokens=TOKENS) as running:
            yield running
    finally:
        output = worker.stop()
    assert "Traceback" not in output, output


@pytest.fixture
def jobs(server: ServerProcess) -> Iterator[Client]:
    with Client(server.base, token="client-admin") as c:
        yield c


@pytest.mark.parametrize("via", ["sse", "poll"])
def test_submit_then_wait(jobs: Client, via: client_mod.Via) -> None:
    job = jobs.submit("count", steps=4, pause=0.05)
    assert job.created and job.state in ("waiting", "active")
    assert job.result(timeout=30, via=via) == {"steps": 4}
    assert job.state == "completed"
    assert job.status["progress"] == {"percent": 100, "step": 4}


@pytest.mark.parametrize("via", ["sse", "poll"])
def test_a_failed_job_raises_with_its_error(jobs: Client, via: client_mod.Via) -> None:
    job = jobs.submit("explode", "the printer is on fire")
    with pytest.raises(JobFailedError, match="the printer is on fire") as failure:
        job.result(timeout=30, via=via)
    assert failure.value.job_id == job.id
    assert failure.value.error is not None
    assert failure.value.error["message"] == "the printer is on fire"
    assert failure.value.error["type"] == "conveyor.outcomes.NonRetryableError"
    assert job.state == "failed"


@pytest.mark.parametrize("via", ["sse", "poll"])
def test_waiting_gives_up_at_the_timeout_and_cancelled_jobs_raise(
        jobs: Client, via: client_mod.Via) -> None:
    job = jobs.submit("add", 1, 2, options={"queue": "nobody-works-here"})
    with pytest.raises(ResultTimeoutError, match="state: waiting"):
        job.result(timeout=0.5, via=via)
    job.cancel()
    with pytest.raises(JobCancelledError):
        job.result(timeout=30, via=via)


def test_the_same_key_returns_the_same_job(jobs: Client) -> None:
    first = jobs.submit("add", 2, 3, key="sum-2-3")
    again = jobs.submit("add", 2, 3, key="sum-2-3")
    assert (again.id, again.created) == (first.id, False)
    assert again.result(timeout=30) == 5
    with pytest.raises(ArgumentsError, match="different request body"):
        jobs.submit("add", 2, 4, key="sum-2-3")


def test_problems_become_conveyor_errors(jobs: Client, server: ServerProcess) -> None:
    with pytest.raises(UnknownTaskError):
        jobs.submit("no_such_task")
    with pytest.raises(ArgumentsError) as bad:
        jobs.submit("add", "not a number", 1)
    assert bad.value.errors
    with pytest.raises(JobNotFoundError):
        jobs.status("no-such-job")
    with Client(server.base, token="client-reader") as reader, \
            pytest.raises(RemoteError) as refused:
        reader.submit("add", 1, 1)
    assert refused.value.status == 403
    with Client(server.base) as anonymous, pytest.raises(RemoteError) as anon:
        anonymous.status("x")
    assert anon.value.status == 401


def test_task_arguments_named_like_options_go_through_submit_call(jobs: Client) -> None:
    job = jobs.submit_call("add", kwargs={"a": 1, "b": 2}, key="call-1")
    assert job.result(timeout=30, via="poll") == 3


@pytest.mark.parametrize("via", ["sse", "poll"])
async def test_async_client(server: ServerProcess, via: client_mod.Via) -> None:
    async with AsyncClient(server.base, token="client-admin") as jobs:
        job = await jobs.submit("count", steps=3, pause=0.05)
        assert await job.result(timeout=30, via=via) == {"steps": 3}
        assert job.state == "completed"
        failing = await jobs.submit("explode", "async boom")
        with pytest.raises(JobFailedError, match="async boom"):
            await failing.result(timeout=30, via=via)
        idle = await jobs.submit("add", 1, 1, options={"queue": "nobody-works-here"})
        with pytest.raises(ResultTimeoutError):
            await idle.result(timeout=0.5, via=via)


# -- without a server: the protocol pieces -------------------------------------------------
def test_polling_backs_off_exponentially_up_to_30_seconds(
        monkeypatch: pytest.MonkeyPatch) -> None:
    polls = 0

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal polls
        polls += 1
        state = "completed" if polls == 12 else "active"
        return httpx.Response(200, json={"id": "j1", "state": state, "result": 7})

    pauses: list[float] = []
    monkeypatch.setattr("conveyor.client.time.sleep", pauses.append)
    with Client("http://conveyor.test", transport=httpx.MockTransport(answer)) as jobs:
        assert jobs.wait("j1", via="poll") == 7
    assert pauses == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0, 30.0]


def test_a_dropped_stream_resumes_from_the_last_event_id() -> None:
    seen_last_ids: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events"):
            seen_last_ids.append(request.headers.get("last-event-id"))
            if len(seen_last_ids) == 1:  # the first connection drops after two events
                body = (b"retry: 3000\n\nid: 5\nevent: snapshot\ndata: {\"done\": false}\n\n"
                        b": heartbeat\n\nid: 6\nevent: progress\ndata: {\"p\": 50}\n\n")
            else:
                body = b"id: 9\nevent: completed\ndata: {}\n\n"
            return httpx.Response(200, content=body,
                                  headers={"content-type": "text/event-stream"})
        done = len(seen_last_ids) == 2
        return httpx.Response(200, json={"id": "j1", "state": "completed" if done else "active",
                                         "result": "ok"})

    with Client("http://conveyor.test", transport=httpx.MockTransport(answer)) as jobs:
        assert jobs.wait("j1", timeout=30) == "ok"
    assert seen_last_ids == [None, "6"]


def test_submit_retries_a_lost_request_with_the_same_idempotency_key(
        monkeypatch: pytest.MonkeyPatch) -> None:
    keys: list[str] = []
    monkeypatch.setattr("conveyor.client.time.sleep", lambda s: None)

    def answer(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers["idempotency-key"])
        if len(keys) == 1:
            raise httpx.ConnectError("connection reset", request=request)
        if len(keys) == 2:
            return httpx.Response(503, json={"detail": "backend restarting"})
        body: dict[str, Any] = {"id": "j1", "state": "waiting", "created": True}
        return httpx.Response(202, json=body)

    with Client("http://conveyor.test", transport=httpx.MockTransport(answer)) as jobs:
        assert jobs.submit("add", 1, 2).id == "j1"
    assert len(keys) == 3 and len(set(keys)) == 1


