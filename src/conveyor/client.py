"""A Python client for services that talk to conveyor over HTTP (sync and async, on httpx).

    from conveyor.client import Client

    with Client("https://jobs.internal", token="...") as jobs:
        job = jobs.submit("generate_report", user_id=1, days=90, key="report-1-90")
        report = job.result(timeout=120)          # waits over SSE; or via="poll"

    async with AsyncClient("https://jobs.internal", token="...") as jobs:
        job = await jobs.submit("generate_report", user_id=1)
        report = await job.result(timeout=120)

`submit` always sends an ``Idempotency-Key`` (`key`, or a fresh random one), so the
client retries a request that failed in transit (connection error, 502/503/504) without
risking a second job; the same `key` with the same arguments returns the same job, with
other arguments it is refused (`ArgumentsError`). Task arguments named `key` or `options`
go through `submit_call`.

Waiting: over Server-Sent Events (``GET /v1/jobs/{id}/events``, resumed with
``Last-Event-ID`` after a dropped connection, falling back to polling if the stream keeps
failing), or by polling ``GET /v1/jobs/{id}`` with exponential backoff capped at 30 s. A
failed job raises `JobFailedError` carrying its last error entry, a cancelled one
`JobCancelledError`, a wait past its timeout `ResultTimeoutError`.

Problem answers become the matching conveyor errors (`JobNotFoundError`,
`JobRemovedError`, `UnknownTaskError`, `ArgumentsError`, `BackendUnavailableError`);
anything else is a `RemoteError` with the status and the problem body.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

from . import extras

try:
    import httpx
except ModuleNotFoundError as exc:
    extras.missing("conveyor.client", "client", exc)

from .errors import (
    ArgumentsError,
    BackendUnavailableError,
    ConveyorError,
    JobCancelledError,
    JobFailedError,
    JobNotFoundError,
    JobRemovedError,
    ResultTimeoutError,
    UnknownTaskError,
)

__all__ = ["AsyncClient", "AsyncRemoteJob", "Client", "RemoteError", "RemoteJob"]

Via = Literal["sse", "poll"]
FIRST_POLL = 0.1  # seconds; doubles after each poll
MAX_POLL = 30.0
FINAL = frozenset({"completed", "failed", "cancelled"})
_RETRY_STATUSES = frozenset({502, 503, 504})
_SEND_ATTEMPTS = 4
_SSE_FAILURES = 3  # broken streams in a row before waiting falls back to polling


class RemoteError(ConveyorError):
    """An error answer of the server that no other conveyor error describes."""

    def __init__(self, status: int, problem: Mapping[str, Any]) -> None:
        detail = problem.get("detail") or problem.get("title") or "no detail"
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.problem = dict(problem)


# -- the protocol, shared by both clients -----------------------------------------------------
def _headers(token: str | None) -> dict[str, str]:
    headers = {"Accept": "application/json", "User-Agent": "conveyor-client"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _enqueue_body(args: tuple[Any, ...] | list[Any], kwargs: Mapping[str, Any],
                  options: Mapping[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {"args": list(args), "kwargs": dict(kwargs)}
    if options:
        body["options"] = dict(options)
    return body


def _job_path(job_id: str) -> str:
    return f"/v1/jobs/{quote(job_id, safe='')}"


def _error(response: httpx.Response, job_id: str | None = None,
           task: str | None = None) -> ConveyorError:
    try:
        problem = response.json()
        if not isinstance(problem, dict):
            raise ValueError
    except ValueError:
        problem = {"detail": response.text[:500] or response.reason_phrase}
    kind = str(problem.get("type", "")).rsplit(":", 1)[-1]
    detail = str(problem.get("detail", ""))
    status = response.status_code
    if kind == "job-removed" and job_id:
        return JobRemovedError(job_id)
    if kind == "job-not-found" and job_id:
        return JobNotFoundError(job_id, detail or None)
    if kind == "unknown-task" and task:
        return UnknownTaskError(task)
    if status in (413, 422):
        return ArgumentsError(detail or f"HTTP {status}", list(problem.get("errors") or []))
    if status == 503:
        return BackendUnavailableError(detail or "the server's backend is unavailable")
    return RemoteError(status, problem)


def _checked(response: httpx.Response, job_id: str | None = None,
             task: str | None = None) -> dict[str, Any]:
    if response.status_code >= 400:
        raise _error(response, job_id, task)
    body: dict[str, Any] = response.json()
    return body


def _outcome(status: Mapping[str, Any]) -> Any:
    """The result of a finished job's status, or its error raised."""
    state = status.get("state")
    if state == "completed":
        return status.get("result")
    if state == "failed":
        raise JobFailedError(str(status["id"]), status.get("error"))
    raise JobCancelledError(str(status["id"]))


def _send_pause(attempt: int) -> float:
    return float(min(0.2 * 2**attempt, 3.0) * random.uniform(0.5, 1.0))


@dataclass
class _SSEParser:
    """Incremental WHATWG event-stream parsing: feed lines, get (id, event, data) frames."""

    event: str = ""
    data: list[str] = field(default_factory=list)
    last_id: str | None = None

    def feed(self, line: str) -> tuple[str | None, str, str] | None:
        if line == "":
            if not self.data and not self.event:
                return None
            frame = (self.last_id, self.event or "message", "\n".join(self.data))
            self.event, self.data = "", []
            return frame
        if line.startswith(":"):
            return None  # a comment: the heartbeat
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            self.data.append(value)
        elif name == "event":
            self.event = value
        elif name == "id" and "\0" not in value:
            self.last_id = value
        return None


def _final_from_frame(event: str, data: str) -> bool:
    """Whether an SSE frame says the job reached a final state."""
    if event in FINAL:
        return True
    if event == "snapshot":
        try:
            return bool(json.loads(data).get("done"))
        except ValueError:
            return False
    return False


class _Deadline:
    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self.at = None if timeout is None else time.monotonic() + timeout

    def left(self) -> float | None:
        return None if self.at is None else max(self.at - time.monotonic(), 0.0)

    def passed(self) -> bool:
        left = self.left()
        return left is not None and left <= 0

    def expired(self, job_id: str, state: str) -> ResultTimeoutError:
        return ResultTimeoutError(job_id, self.timeout or 0.0, state)


# -- sync -----------------------------------------------------------------------------------
class Client:
    """A synchronous conveyor client; one connection pool, close it (or use ``with``)."""

    def __init__(self, base_url: str, *, token: str | None = None, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.http = httpx.Client(base_url=base_url.rstrip("/"), headers=_headers(token),
                                 timeout=timeout, transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _send(self, method: str, path: str, **kw: Any) -> httpx.Response:
        for attempt in range(_SEND_ATTEMPTS):
            try:
                response = self.http.request(method, path, **kw)
            except httpx.TransportError:
                if attempt == _SEND_ATTEMPTS - 1:
                    raise
            else:
                if response.status_code not in _RETRY_STATUSES or attempt == _SEND_ATTEMPTS - 1:
                    return response
            time.sleep(_send_pause(attempt))
        raise AssertionError("unreachable")

    def submit(self, task: str, *args: Any, key: str | None = None,
               options: Mapping[str, Any] | None = None, **kwargs: Any) -> RemoteJob:
        """Enqueue `task` with these arguments; a handle on the accepted job."""
        return self.submit_call(task, args, kwargs, key=key, options=options)

    def submit_call(self, task: str, args: tuple[Any, ...] | list[Any] = (),
                    kwargs: Mapping[str, Any] | None = None, *, key: str | None = None,
                    options: Mapping[str, Any] | None = None) -> RemoteJob:
        """`submit` with the arguments as a list and a dict."""
        response = self._send("POST", f"/v1/tasks/{quote(task, safe='')}/jobs",
                              json=_enqueue_body(args, kwargs or {}, options),
                              headers={"Idempotency-Key": key or uuid.uuid4().hex})
        return RemoteJob(self, _checked(response, task=task))

    def status(self, job_id: str) -> dict[str, Any]:
        """The job's status document (state, progress, result or error, timestamps)."""
        return _checked(self._send("GET", _job_path(job_id)), job_id)

    def job(self, job_id: str) -> RemoteJob:
        return RemoteJob(self, self.status(job_id))

    def cancel(self, job_id: str) -> dict[str, Any]:
        return _checked(self._send("POST", _job_path(job_id) + "/cancel"), job_id)

    def retry(self, job_id: str) -> dict[str, Any]:
        return _checked(self._send("POST", _job_path(job_id) + "/retry"), job_id)

    def wait(self, job_id: str, timeout: float | None = None, *, via: Via = "sse") -> Any:
        """Wait for the job to finish: its result, or its failure raised."""
        deadline = _Deadline(timeout)
        if via == "sse":
            status = self._wait_sse(job_id, deadline)
        else:
            status = self._wait_poll(job_id, deadline)
        return _outcome(status)

    def _wait_poll(self, job_id: str, deadline: _Deadline) -> dict[str, Any]:
        pause = FIRST_POLL
        while True:
            status = self.status(job_id)
            if status.get("state") in FINAL:
                return status
            left = deadline.left()
            if left is not None and left <= 0:
                raise deadline.expired(job_id, str(status.get("state")))
            time.sleep(pause if left is None else min(pause, left))
            pause = min(pause * 2, MAX_POLL)

    def _wait_sse(self, job_id: str, deadline: _Deadline) -> dict[str, Any]:
        last_id: str | None = None
        failures = 0
        while failures < _SSE_FAILURES:
            try:
                finished, last_id = self._stream(job_id, last_id, deadline)
            except (httpx.TransportError, httpx.RemoteProtocolError):
                finished = False
                failures += 1
            else:
                failures = 0 if finished else failures + 1
            if finished or deadline.passed():
                break
        status = self.status(job_id)
        if status.get("state") in FINAL:
            return status
        if deadline.passed():
            raise deadline.expired(job_id, str(status.get("state")))
        return self._wait_poll(job_id, deadline)  # the stream keeps breaking

    def _stream(self, job_id: str, last_id: str | None,
                deadline: _Deadline) -> tuple[bool, str | None]:
        headers = {"Accept": "text/event-stream"}
        if last_id is not None:
            headers["Last-Event-ID"] = last_id
        left = deadline.left()
        read = 30.0 if left is None else max(min(left, 30.0), 0.01)  # heartbeats: 15 s
        parser = _SSEParser(last_id=last_id)
        try:
            with self.http.stream("GET", _job_path(job_id) + "/events", headers=headers,
                                  timeout=httpx.Timeout(10.0, read=read)) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _error(response, job_id)
                for line in response.iter_lines():
                    frame = parser.feed(line)
                    if frame is not None and _final_from_frame(frame[1], frame[2]):
                        return True, parser.last_id
                    if deadline.passed():
                        break
        except httpx.ReadTimeout:
            pass
        return False, parser.last_id


class RemoteJob:
    """A job accepted by a conveyor server, as this client last saw it."""

    def __init__(self, client: Client, status: dict[str, Any]) -> None:
        self.client = client
        self.status = status

    def __repr__(self) -> str:
        return f"<RemoteJob {self.id} {self.status.get('task')} {self.state}>"

    @property
    def id(self) -> str:
        return str(self.status["id"])

    @property
    def state(self) -> str:
        return str(self.status.get("state"))

    @property
    def created(self) -> bool:
        """False when the server returned an existing job (same key) instead of a new one."""
        return bool(self.status.get("created", True))

    def refresh(self) -> dict[str, Any]:
        self.status = {**self.status, **self.client.status(self.id)}
        return self.status

    def result(self, timeout: float | None = None, *, via: Via = "sse") -> Any:
        """Wait for the job (SSE or polling); its result, or JobFailedError et al."""
        try:
            return self.client.wait(self.id, timeout, via=via)
        finally:
            self._refresh_quietly()

    def _refresh_quietly(self) -> None:
        with contextlib.suppress(ConveyorError, httpx.HTTPError):
            self.refresh()

    def cancel(self) -> dict[str, Any]:
        self.status = self.client.cancel(self.id)
        return self.status


# -- async ----------------------------------------------------------------------------------
class AsyncClient:
    """The asyncio twin of `Client`."""

    def __init__(self, base_url: str, *, token: str | None = None, timeout: float = 10.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.http = httpx.AsyncClient(base_url=base_url.rstrip("/"), headers=_headers(token),
                                      timeout=timeout, transport=transport)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _send(self, method: str, path: str, **kw: Any) -> httpx.Response:
        for attempt in range(_SEND_ATTEMPTS):
            try:
                response = await self.http.request(method, path, **kw)
            except httpx.TransportError:
                if attempt == _SEND_ATTEMPTS - 1:
                    raise
            else:
                if response.status_code not in _RETRY_STATUSES or attempt == _SEND_ATTEMPTS - 1:
                    return response
            await asyncio.sleep(_send_pause(attempt))
        raise AssertionError("unreachable")

    async def submit(self, task: str, *args: Any, key: str | None = None,
                     options: Mapping[str, Any] | None = None,
                     **kwargs: Any) -> AsyncRemoteJob:
        return await self.submit_call(task, args, kwargs, key=key, options=options)

    async def submit_call(self, task: str, args: tuple[Any, ...] | list[Any] = (),
                          kwargs: Mapping[str, Any] | None = None, *, key: str | None = None,
                          options: Mapping[str, Any] | None = None) -> AsyncRemoteJob:
        response = await self._send("POST", f"/v1/tasks/{quote(task, safe='')}/jobs",
                                    json=_enqueue_body(args, kwargs or {}, options),
                                    headers={"Idempotency-Key": key or uuid.uuid4().hex})
        return AsyncRemoteJob(self, _checked(response, task=task))

    async def status(self, job_id: str) -> dict[str, Any]:
        return _checked(await self._send("GET", _job_path(job_id)), job_id)

    async def job(self, job_id: str) -> AsyncRemoteJob:
        return AsyncRemoteJob(self, await self.status(job_id))

    async def cancel(self, job_id: str) -> dict[str, Any]:
        return _checked(await self._send("POST", _job_path(job_id) + "/cancel"), job_id)

    async def retry(self, job_id: str) -> dict[str, Any]:
        return _checked(await self._send("POST", _job_path(job_id) + "/retry"), job_id)

    async def wait(self, job_id: str, timeout: float | None = None, *,
                   via: Via = "sse") -> Any:
        deadline = _Deadline(timeout)
        if via == "sse":
            status = await self._wait_sse(job_id, deadline)
        else:
            status = await self._wait_poll(job_id, deadline)
        return _outcome(status)

    async def _wait_poll(self, job_id: str, deadline: _Deadline) -> dict[str, Any]:
        pause = FIRST_POLL
        while True:
            status = await self.status(job_id)
            if status.get("state") in FINAL:
                return status
            left = deadline.left()
            if left is not None and left <= 0:
                raise deadline.expired(job_id, str(status.get("state")))
            await asyncio.sleep(pause if left is None else min(pause, left))
            pause = min(pause * 2, MAX_POLL)

    async def _wait_sse(self, job_id: str, deadline: _Deadline) -> dict[str, Any]:
        last_id: str | None = None
        failures = 0
        while failures < _SSE_FAILURES:
            try:
                finished, last_id = await self._stream(job_id, last_id, deadline)
            except (httpx.TransportError, httpx.RemoteProtocolError):
                finished = False
                failures += 1
            else:
                failures = 0 if finished else failures + 1
            if finished or deadline.passed():
                break
        status = await self.status(job_id)
        if status.get("state") in FINAL:
            return status
        if deadline.passed():
            raise deadline.expired(job_id, str(status.get("state")))
        return await self._wait_poll(job_id, deadline)

    async def _stream(self, job_id: str, last_id: str | None,
                      deadline: _Deadline) -> tuple[bool, str | None]:
        headers = {"Accept": "text/event-stream"}
        if last_id is not None:
            headers["Last-Event-ID"] = last_id
        parser = _SSEParser(last_id=last_id)
        try:
            async with asyncio.timeout(deadline.left()):
                async for frame in self._frames(job_id, headers, parser):
                    if _final_from_frame(frame[1], frame[2]):
                        return True, parser.last_id
        except TimeoutError:
            pass
        return False, parser.last_id

    async def _frames(self, job_id: str, headers: dict[str, str],
                      parser: _SSEParser) -> AsyncIterator[tuple[str | None, str, str]]:
        async with self.http.stream("GET", _job_path(job_id) + "/events", headers=headers,
                                    timeout=httpx.Timeout(10.0, read=30.0)) as response:
            if response.status_code >= 400:
                await response.aread()
                raise _error(response, job_id)
            async for line in response.aiter_lines():
                frame = parser.feed(line)
                if frame is not None:
                    yield frame


class AsyncRemoteJob:
    """The asyncio twin of `RemoteJob`."""

    def __init__(self, client: AsyncClient, status: dict[str, Any]) -> None:
        self.client = client
        self.status = status

    def __repr__(self) -> str:
        return f"<AsyncRemoteJob {self.id} {self.status.get('task')} {self.state}>"

    @property
    def id(self) -> str:
        return str(self.status["id"])

    @property
    def state(self) -> str:
        return str(self.status.get("state"))

    @property
    def created(self) -> bool:
        return bool(self.status.get("created", True))

    async def refresh(self) -> dict[str, Any]:
        self.status = {**self.status, **await self.client.status(self.id)}
        return self.status

    async def result(self, timeout: float | None = None, *, via: Via = "sse") -> Any:
        try:
            return await self.client.wait(self.id, timeout, via=via)
        finally:
            with contextlib.suppress(ConveyorError, httpx.HTTPError):
                await self.refresh()

    async def cancel(self) -> dict[str, Any]:
        self.status = await self.client.cancel(self.id)
        return self.status
