"""OpenTelemetry tracing (``conveyor[otel]``): the trace of the code that enqueues a job goes
on through every attempt of it, in the OpenTelemetry messaging conventions.

    from conveyor.otel import Tracing
    app.install(Tracing())        # where the app is defined: producers, API and workers

- Enqueue (any producer: your code, the HTTP API, the CLI) opens a ``send <queue>``
  PRODUCER span under the caller's current span and stores its W3C trace context in the
  job's meta (``traceparent``, ``tracestate``).
- The worker opens a ``process <queue>`` CONSUMER span around each attempt. The first
  attempt is a child of the ``send`` span: one trace from the request to the result. A
  retry (attempt 2 and later, possibly hours later) starts a new trace with a *link* to the
  ``send`` span instead of stretching the first trace over the backoff.
- Attributes: ``messaging.system`` = "conveyor", ``messaging.operation.type`` and
  ``.name``, ``messaging.destination.name`` (the queue), ``messaging.message.id`` (the job
  id), ``conveyor.task``, ``conveyor.attempt``; a failed attempt gets ``error.type`` (the
  exception's qualified name), the exception as an event and an error status.
- Inside a ``def`` task (its thread, or the child process of a process task) the process
  span is the current span too, so spans your task opens nest under it.
- HTTP: the API reads ``traceparent``/``tracestate`` from each request and opens a SERVER
  span, so a client's trace continues through ``send`` and ``process``. If you instrument
  the API yourself (opentelemetry-instrumentation-fastapi), pass ``http_spans=False``.

Spans go to the global tracer provider unless one is given (``Tracing(tracer_provider=p)``).
Only ``opentelemetry-api`` is required; install and configure the SDK and an exporter as
for any OpenTelemetry application.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from . import extras
from .outcomes import Cancel, RateLimited, Retry
from .plugins import Plugin

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace import Link, SpanKind, Status, StatusCode
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ModuleNotFoundError as exc:
    extras.missing("conveyor.otel", "otel", exc)

if TYPE_CHECKING:
    from .app import Conveyor
    from .jobs import Job
    from .middleware import Enqueuing

SYSTEM = "conveyor"
TRACE_KEYS = ("traceparent", "tracestate")  # the W3C trace context, kept in job.meta
PROCESS_KEY = "conveyor.otel.process"  # the running attempt's span, for a `def` body
_W3C = TraceContextTextMapPropagator()
_OUTCOMES = (Retry, Cancel, RateLimited)  # a task ending an attempt on purpose: no error


class Tracing(Plugin):
    """The tracing plugin: `send` spans at enqueue, `process` spans per attempt."""

    name = "conveyor.otel"

    def __init__(self, *, tracer_provider: trace.TracerProvider | None = None,
                 http_spans: bool = True) -> None:
        from . import __version__

        self.tracer = trace.get_tracer("conveyor", __version__, tracer_provider)
        self.http_spans = http_spans

    def setup(self, app: Conveyor) -> None:
        app.add_middleware(_SendAndProcess(self.tracer))
        app.add_middleware(_ProcessInBody())

    def http_middleware(self) -> tuple[type, dict[str, Any]]:
        """The ASGI middleware `create_app` adds: each request's trace context is current
        while it is handled (and, with `http_spans`, a SERVER span)."""
        return _RequestTrace, {"tracer": self.tracer, "spans": self.http_spans}


def _attributes(job: Job | Enqueuing, operation: str) -> dict[str, Any]:
    return {"messaging.system": SYSTEM, "messaging.operation.type": operation,
            "messaging.operation.name": operation, "messaging.destination.name": job.queue,
            "messaging.message.id": job.id, "conveyor.task": job.task}


class _SendAndProcess:
    """on_enqueue: the `send` span and its context into job.meta; around_job (async, on the
    worker's loop): the `process` span of one attempt."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer

    def on_enqueue(self, job: Enqueuing) -> None:
        with self.tracer.start_as_current_span(f"send {job.queue}", kind=SpanKind.PRODUCER,
                                               attributes=_attributes(job, "send")):
            carrier: dict[str, str] = {}
            _W3C.inject(carrier)
        job.meta.update(carrier)

    async def around_job(self, job: Job, call_next: Callable[[], Awaitable[Any]]) -> Any:
        sent = _W3C.extract({k: job.meta[k] for k in TRACE_KEYS if k in job.meta})
        sent_span = trace.get_current_span(sent).get_span_context()
        if job.attempt <= 1 or not sent_span.is_valid:
            parent, links = sent, []
        else:  # a retry: a trace of its own, linked to the enqueue
            parent, links = otel_context.Context(), [Link(sent_span)]
        attributes = {**_attributes(job, "process"), "conveyor.attempt": job.attempt}
        with self.tracer.start_as_current_span(
                f"process {job.queue}", context=parent, kind=SpanKind.CONSUMER, links=links,
                attributes=attributes, record_exception=False,
                set_status_on_exception=False) as span:
            carrier: dict[str, str] = {}
            _W3C.inject(carrier)
            job.meta[PROCESS_KEY] = carrier  # this attempt's copy only: never stored
            try:
                return await call_next()
            except _OUTCOMES:
                raise
            except BaseException as exc:
                _record_failure(span, exc)
                raise


def _record_failure(span: trace.Span, exc: BaseException) -> None:
    kind = type(exc)
    span.set_attribute("error.type", f"{kind.__module__}.{kind.__qualname__}"
                       if kind.__module__ != "builtins" else kind.__qualname__)
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, str(exc) or kind.__name__))


class _ProcessInBody:
    """around_job (sync, in the thread or child process that runs a `def` body): make the
    attempt's `process` span current there, so the task's own spans nest under it."""

    def around_job(self, job: Job, call_next: Callable[[], Any]) -> Any:
        carrier = job.meta.get(PROCESS_KEY)
        if not isinstance(carrier, dict):
            return call_next()
        token = otel_context.attach(_W3C.extract(carrier))
        try:
            return call_next()
        finally:
            otel_context.detach(token)


class _RequestTrace:
    """Pure ASGI middleware: the request's W3C trace context (and a SERVER span) is current
    while the app handles it, so enqueue's `send` span joins the caller's trace."""

    def __init__(self, app: Any, tracer: trace.Tracer, spans: bool) -> None:
        self.app = app
        self.tracer = tracer
        self.spans = spans

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]
                   if k in (b"traceparent", b"tracestate")}
        token = otel_context.attach(_W3C.extract(headers))
        try:
            if not self.spans:
                await self.app(scope, receive, send)
                return
            await self._with_span(scope, receive, send)
        finally:
            otel_context.detach(token)

    async def _with_span(self, scope: MutableMapping[str, Any], receive: Any,
                         send: Any) -> None:
        method = scope.get("method", "GET")
        attributes = {"http.request.method": method, "url.path": scope.get("path", "")}
        with self.tracer.start_as_current_span(method, kind=SpanKind.SERVER,
                                               attributes=attributes) as span:

            async def sent(message: MutableMapping[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                await send(message)

            await self.app(scope, receive, sent)
