"""One trace from an HTTP request through enqueue to the worker's attempt, in the messaging
conventions; a retry starts its own trace linked to the enqueue (SDK in-memory exporter,
real worker, SQLite and Redis)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode, format_span_id, format_trace_id

from conveyor import Conveyor, RateLimited
from conveyor.http import HttpSettings, create_app
from conveyor.otel import Tracing
from conveyor.testing import adrain
from tests.redis_server import redis_server, unique_url  # noqa: F401 (a session fixture)

TOKEN = "otel-admin"
CLIENT_TRACE = 0x4BF92F3577B34DA6A3CE929D0E0E4736
CLIENT_SPAN = 0x00F067AA0BA902B7


@pytest.fixture(params=["sqlite", "redis"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "redis":
        return unique_url(request.getfixturevalue("redis_server"))
    return f"sqlite:///{tmp_path}/jobs.db"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    exporter.clear()


@pytest.fixture
async def app(url: str, exporter: InMemorySpanExporter) -> AsyncIterator[Conveyor]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = Conveyor(url)
    app.install(Tracing(tracer_provider=provider))
    failures = itertools.count()

    @app.task(queue="mail", expose=True)
    def send_mail(to: str) -> str:
        return f"sent to {to}"

    @app.task(queue="mail", expose=True, attempts=2, backoff="fixed:0.01s")
    def flaky(to: str) -> str:
        if next(failures) == 0:
            raise ConnectionError("smtp down")
        return f"sent to {to}"

    @app.task(queue="mail", expose=True)
    def throttled(to: str) -> str:
        if next(failures) == 0:
            raise RateLimited(retry_after=0)  # the downstream said 429: not an error
        return f"sent to {to}"

    await app.aopen()
    yield app
    await app.aclose()


async def post_job(app: Conveyor, task: str) -> str:
    api = create_app(app, HttpSettings.from_env({"CONVEYOR_TOKENS": f"admin:{TOKEN}"}))
    traceparent = f"00-{format_trace_id(CLIENT_TRACE)}-{format_span_id(CLIENT_SPAN)}-01"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api),
                                 base_url="http://conveyor") as client:
        response = await client.post(f"/v1/tasks/{task}/jobs",
                                     json={"kwargs": {"to": "ana@example.com"}},
                                     headers={"Authorization": f"Bearer {TOKEN}",
                                              "traceparent": traceparent})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    assert isinstance(job_id, str)
    return job_id


def named(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


async def test_one_trace_from_the_request_through_the_worker(
        app: Conveyor, exporter: InMemorySpanExporter) -> None:
    job_id = await post_job(app, "send_mail")
    await adrain(app, ["mail"])
    spans = exporter.get_finished_spans()
    (server,) = [s for s in spans if s.kind is SpanKind.SERVER]
    (send,) = named(spans, "send mail")
    (process,) = named(spans, "process mail")
    assert {s.context.trace_id for s in (server, send, process)} == {CLIENT_TRACE}
    assert server.parent is not None and server.parent.span_id == CLIENT_SPAN
    assert send.parent is not None and send.parent.span_id == server.context.span_id
    assert process.parent is not None and process.parent.span_id == send.context.span_id
    assert send.kind is SpanKind.PRODUCER and process.kind is SpanKind.CONSUMER
    for span, operation in ((send, "send"), (process, "process")):
        attributes = dict(span.attributes or {})
        assert attributes["messaging.system"] == "conveyor"
        assert attributes["messaging.operation.type"] == operation
        assert attributes["messaging.destination.name"] == "mail"
        assert attributes["messaging.message.id"] == job_id
        assert attributes["conveyor.task"] == "send_mail"
    assert process.status.status_code is not StatusCode.ERROR
    assert "error.type" not in (process.attributes or {})
    stored = await app.backend.get(job_id)
    assert stored is not None
    assert stored.meta["traceparent"].split("-")[2] == format_span_id(send.context.span_id)
    assert "conveyor.otel.process" not in stored.meta  # the attempt's span is never stored


async def test_a_retry_starts_a_new_trace_linked_to_the_enqueue(
        app: Conveyor, exporter: InMemorySpanExporter) -> None:
    await post_job(app, "flaky")
    await adrain(app, ["mail"])
    spans = exporter.get_finished_spans()
    (send,) = named(spans, "send mail")
    first, second = sorted(named(spans, "process mail"), key=lambda s: s.start_time or 0)
    assert first.context.trace_id == send.context.trace_id == CLIENT_TRACE
    assert first.status.status_code is StatusCode.ERROR
    assert dict(first.attributes or {})["error.type"] == "ConnectionError"
    assert dict(first.attributes or {})["conveyor.attempt"] == 1
    assert second.context.trace_id != CLIENT_TRACE and second.parent is None
    assert [link.context.span_id for link in second.links] == [send.context.span_id]
    assert dict(second.attributes or {})["conveyor.attempt"] == 2
    assert second.status.status_code is not StatusCode.ERROR


async def test_a_rate_limited_attempt_is_not_an_error(
        app: Conveyor, exporter: InMemorySpanExporter) -> None:
    job_id = await post_job(app, "throttled")
    await adrain(app, ["mail"])
    attempts = named(exporter.get_finished_spans(), "process mail")
    assert len(attempts) == 2
    assert all(s.status.status_code is not StatusCode.ERROR for s in attempts)
    assert all("error.type" not in (s.attributes or {}) for s in attempts)
    stored = await app.backend.get(job_id)
    assert stored is not None and stored.attempt == 1  # the rate-limited run was uncharged


async def test_spans_a_def_task_opens_nest_under_its_attempt(
        url: str, exporter: InMemorySpanExporter) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = Conveyor(url)
    app.install(Tracing(tracer_provider=provider))
    tracer = provider.get_tracer("tasks")

    @app.task(queue="mail")
    def render() -> None:
        with tracer.start_as_current_span("render template"):
            pass

    await app.aopen()
    try:
        await render.aenqueue()
        await adrain(app, ["mail"])
    finally:
        await app.aclose()
    spans = exporter.get_finished_spans()
    (process,) = named(spans, "process mail")
    (inner,) = named(spans, "render template")
    assert inner.parent is not None and inner.parent.span_id == process.context.span_id
