"""Errors as RFC 9457 problem details: every error answer is `application/problem+json`.

A problem has `type` (a URN naming the kind, stable for clients to switch on), `title`,
`status`, `detail` (a sentence for a person) and, for field problems, `errors`
(``[{"loc": [...], "msg": "...", "type": "..."}]``). The conveyor error tree maps onto
statuses here, in one table:

    ArgumentsError, InvalidOptionError,
    other InvalidJobError, request validation   422   the body does not fit
    UnknownTaskError (and unexposed tasks)      404   /v1/tasks/{task} does not exist
    PayloadTooLargeError, body over the limit   413
    InvalidRequestError, malformed JSON (NaN,
    Infinity, 1e400 included), JSON nested
    too deep (json-too-deep), a bad header      400
    a body that is not JSON                     415
    JobNotFoundError                            404
    JobRemovedError                             410   removed by retention or by hand
    JobStateError                               409   not in a state that allows it
    UnknownQueueError                           404   pause/resume/delete of no queue
    UnknownLimiterError                         404   /v1/limits/{name} is no stored limiter
    QueueNotEmptyError                          409   deleting a queue that holds jobs
    missing or unknown bearer token             401   with WWW-Authenticate: Bearer
    read scope on an admin route                403
    EnqueueOutcomeUnknownError                  503   maybe stored: same Idempotency-Key
    BackendError                                503   with Retry-After
    anything else (a bug)                       500

A client mistake never yields a 5xx: every path from a request to the backend validates
first and raises one of the 4xx errors above.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import (
    BackendError,
    ConveyorError,
    EnqueueOutcomeUnknownError,
    InvalidJobError,
    InvalidRequestError,
    JobNotFoundError,
    JobRemovedError,
    JobStateError,
    PayloadTooLargeError,
    QueueNotEmptyError,
    UnknownLimiterError,
    UnknownQueueError,
    UnknownTaskError,
)
from ..serialization import dumps
from ..web.problem import MEDIA_TYPE, TYPE_PREFIX, problem_response

log = logging.getLogger("conveyor.http")


class FieldProblem(BaseModel):
    loc: list[str | int] = Field(description="Where: e.g. [\"body\", \"kwargs\", \"days\"].")
    msg: str
    type: str = "invalid"


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(examples=[TYPE_PREFIX + "job-not-found"],
                      description="A URN naming the kind of problem; switch on this.")
    title: str = Field(description="A short summary of the kind of problem.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What went wrong in this request, for a person.")
    errors: list[FieldProblem] | None = Field(
        default=None, description="Field problems of a request that did not validate.")


class ProblemError(StarletteHTTPException):
    """Raised by handlers (and middleware) to answer with a problem.

    A subclass of Starlette's HTTPException, so FastAPI's body reading lets it through
    unchanged (it turns other exceptions raised while reading into a plain 400).
    """

    def __init__(self, status: int, slug: str, title: str, detail: str, *,
                 errors: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(status, detail, headers)
        self.slug = slug
        self.title = title
        self.errors = errors
        self.extra = extra


# (class, status, slug, title); the first class in a raised error's MRO wins.
_MAPPING: list[tuple[type[ConveyorError], int, str, str]] = [
    (UnknownTaskError, 404, "unknown-task", "Unknown task"),
    (PayloadTooLargeError, 413, "payload-too-large", "Payload too large"),
    (InvalidJobError, 422, "invalid-job", "The job was refused"),
    (UnknownQueueError, 404, "unknown-queue", "Unknown queue"),
    (UnknownLimiterError, 404, "unknown-limiter", "Unknown limiter"),
    (QueueNotEmptyError, 409, "queue-not-empty", "Queue not empty"),
    (InvalidRequestError, 400, "invalid-request", "Invalid request"),
    (JobRemovedError, 410, "job-removed", "Job removed"),
    (JobNotFoundError, 404, "job-not-found", "Job not found"),
    (JobStateError, 409, "job-state", "Job state does not allow this"),
    (EnqueueOutcomeUnknownError, 503, "enqueue-outcome-unknown",
     "Enqueue outcome unknown: retry with the same Idempotency-Key"),
    (BackendError, 503, "backend-unavailable", "Backend unavailable"),
]


def conveyor_problem(exc: ConveyorError) -> ProblemError:
    for cls, status, slug, title in _MAPPING:
        if isinstance(exc, cls):
            errors = getattr(exc, "errors", None) or None
            headers = {"Retry-After": "1"} if status == 503 else None
            return ProblemError(status, slug, title, str(exc), errors=errors, headers=headers)
    return ProblemError(500, "internal", "Internal error", str(exc))


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(exc.status_code, exc.slug, exc.title, str(exc.detail),
                            errors=exc.errors, headers=exc.headers, **exc.extra)


async def _on_conveyor_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ConveyorError)
    if isinstance(exc, BackendError):
        log.warning("backend error on %s %s: %s", request.method, request.url.path, exc)
    return await _on_problem(request, conveyor_problem(exc))


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    raw = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in raw):
        return problem_response(400, "malformed-json", "Malformed JSON",
                                "the request body is not valid JSON")
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""),
               "type": e.get("type", "invalid")} for e in raw]
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"])
    return problem_response(422, "validation", "The request did not validate",
                            f"{where}: {first['msg']}" if where else str(first["msg"]),
                            errors=errors)


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http")
    title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
    detail = exc.detail if isinstance(exc.detail, str) else dumps(exc.detail)
    headers = exc.headers
    if exc.status_code == 405:  # every method of the path, not just the first route's
        headers = {**(headers or {}), "Allow": ", ".join(_methods(request))}
    return problem_response(exc.status_code, slug, title, detail, headers=headers)


def _methods(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods and \
                route.matches(request.scope)[0] is not Match.NONE:
            methods |= route.methods
    return sorted(methods)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return problem_response(500, "internal", "Internal error",
                            "the server failed to handle this request; it was logged")


def install(api: FastAPI) -> None:
    """Route every error of `api` to problem+json, and bound request bodies."""
    api.add_exception_handler(ProblemError, _on_problem)
    api.add_exception_handler(ConveyorError, _on_conveyor_error)
    api.add_exception_handler(RequestValidationError, _on_validation)
    api.add_exception_handler(StarletteHTTPException, _on_http)
    api.add_exception_handler(Exception, _on_unexpected)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting problem answers."""
    described = {
        400: "Malformed JSON, a bad header, cursor or query",
        401: "No or unknown bearer token",
        403: "The token's scope does not allow this",
        404: "No such job, task or queue",
        409: "The job's state does not allow this (or the queue is not empty)",
        410: "The job was removed",
        413: "The request body is over the limit",
        415: "The request body is not JSON",
        422: "The request did not validate",
        503: "The backend cannot be reached",
    }
    return {status: {"model": Problem, "description": described.get(status, "Problem"),
                     "content": {MEDIA_TYPE: {"schema": {"$ref":
                                                         "#/components/schemas/Problem"}}}}
            for status in statuses}


def tidy_openapi(api: FastAPI, models: Sequence[type[BaseModel]] = ()) -> None:
    """Problem responses are documented as application/problem+json only (FastAPI adds
    application/json beside it for any response with a model); optional parameters are
    not nullable; `models` that routes reference by hand (openapi_extra) join the
    components."""
    generate = api.openapi

    def openapi() -> dict[str, Any]:
        if api.openapi_schema:
            return api.openapi_schema
        schema = generate()
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                for answer in operation.get("responses", {}).values():
                    content = answer.get("content", {})
                    if MEDIA_TYPE in content:
                        content.pop("application/json", None)
                for parameter in operation.get("parameters", []):
                    _not_null(parameter)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in models:
            described = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(described.pop("$defs", {}))
            components[model.__name__] = described
        return schema

    api.openapi = openapi  # type: ignore[method-assign]


def _not_null(parameter: dict[str, Any]) -> None:
    """An optional query or header parameter is left out, never JSON null: FastAPI's
    ``X | None`` schema would invite clients (and fuzzers) to send the text "null"."""
    schema = parameter.get("schema", {})
    options = schema.get("anyOf")
    if isinstance(options, list):
        kept = [o for o in options if o != {"type": "null"}]
        if len(kept) == 1 and len(kept) < len(options):
            del schema["anyOf"]
            schema.update(kept[0])


class BodyLimit:
    """ASGI middleware: refuse bodies over `limit` bytes with 413, before anything parses
    them. Checks the declared Content-Length up front and counts the bytes as they stream
    (a chunked body, or a client that lies about its length)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0:
                    await problem_response(400, "invalid-header", "Invalid header",
                                           "Content-Length is not a number")(scope, receive, send)
                    return
                if declared > self.limit:
                    await self._too_large(declared)(scope, receive, send)
                    return
                break
        seen = 0
        limit = self.limit

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise ProblemError(413, "payload-too-large", "Payload too large",
                                       f"the request body is over the limit of {limit} bytes")
            return message

        await self.app(scope, counted, send)

    def _too_large(self, size: int) -> JSONResponse:
        return problem_response(413, "payload-too-large", "Payload too large",
                                f"the request body is {size} bytes, over the limit of "
                                f"{self.limit} bytes", headers={"Connection": "close"})
