"""/v1/flows: submit a flow of exposed tasks (admin scope), follow it (read scope),
cancel what has not run (admin scope). conveyor/flows builds and stores it.

    POST /v1/flows                 {"jobs": [{"ref": "a", "task": "fetch", "kwargs": {...}},
                                             {"ref": "b", "task": "parse", "after": ["a"],
                                              "on_failure": "fail", "pass_result": "page"}]}
    GET  /v1/flows/{id}            state, counts, every job with its dependencies, edges
    GET  /v1/flows/{id}/events     SSE: a snapshot, the jobs' events, a last snapshot
    POST /v1/flows/{id}/cancel     cancel what has not run

A flow is stored whole or not at all. An unknown or unexposed task, a `ref` named twice,
an `after` naming no earlier job, arguments that do not fit: 422, nothing stored.
Idempotency-Key: the flow's id (and its jobs' ids) derive from the key, so a repeat
answers the flow stored the first time (Idempotent-Replayed: true); the same key with
another body is refused (422).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import AsyncGenerator
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from ..backends.base import Backend, NewJob
from ..errors import InvalidFlowError
from ..flows import Flow
from ..flows.view import flow_data
from ..jobs import Job
from ..web.hub import EventHub, Subscription, heartbeat_seconds
from . import models as m
from .body import idempotency_key
from .deps import admin_access, backend_of, conveyor_of, read_access
from .events import (
    FINAL_KINDS,
    HEARTBEAT,
    SSE_HEADERS,
    STATE_KINDS,
    _event_frame,
    _frame,
    hub_of,
)
from .problems import ProblemError, responses

router = APIRouter(tags=["flows"], responses=responses(401, 422, 503))
READ = [Depends(read_access)]
ADMIN = [Depends(admin_access)]
FlowId = Annotated[str, Path(description="The flow's id.", max_length=200)]
MAX_FLOW_JOBS = 10_000


class FlowJobRequest(BaseModel):
    ref: str = Field(max_length=200, description="A name for `after` lists in this request.")
    task: str = Field(max_length=200)
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    after: list[str] = Field(default_factory=list, description="refs of earlier jobs.")
    on_failure: Literal["fail", "continue", "skip"] = "fail"
    pass_result: str | bool | None = Field(
        default=None, description="A parameter that receives the dependencies' result.")
    into: Literal["one", "list"] = "one"


class FlowRequest(BaseModel):
    jobs: list[FlowJobRequest] = Field(min_length=1, max_length=MAX_FLOW_JOBS)


def _build(request: Request, body: FlowRequest, flow_id: str | None,
           fingerprint: str | None) -> Flow:
    conveyor = conveyor_of(request)
    flow = Flow(conveyor)
    if flow_id is not None:
        flow.id = flow_id
    added: dict[str, NewJob] = {}
    for i, spec in enumerate(body.jobs):
        target = conveyor.tasks.get(spec.task)
        if target is None or not target.exposed:
            raise InvalidFlowError(f"jobs[{i}]: no task {spec.task!r} is exposed over HTTP")
        if spec.ref in added:
            raise InvalidFlowError(f"jobs[{i}]: ref {spec.ref!r} is used twice")
        unknown = [ref for ref in spec.after if ref not in added]
        if unknown:
            raise InvalidFlowError(f"jobs[{i}]: after names {unknown[0]!r}, which is not an "
                                   "earlier job of the flow")
        if fingerprint is not None and i == 0:
            target = target.options(meta={"idempotency": {"fingerprint": fingerprint}})
        job = target.prepare(*spec.args, **spec.kwargs)
        if flow_id is not None:
            job = _with_id(job, f"{flow_id}-{i}")
        added[spec.ref] = flow.add(job, [added[ref] for ref in spec.after],
                                   on_failure=spec.on_failure, pass_result=spec.pass_result,
                                   into=spec.into)
    return flow


def _with_id(job: NewJob, job_id: str) -> NewJob:
    return dataclasses.replace(job, id=job_id)


@router.post("/flows", status_code=202, dependencies=ADMIN, summary="Submit a flow",
             responses=responses(400, 403, 422))
async def submit_flow(request: Request, body: FlowRequest) -> Response:
    conveyor = conveyor_of(request)
    await backend_of(request)
    key = idempotency_key(request)
    flow_id = fingerprint = None
    if key is not None:
        flow_id = "flow-" + hashlib.sha256(key.encode()).hexdigest()[:26]
        fingerprint = hashlib.sha256(orjson.dumps(body.model_dump(mode="json"),
                                                  option=orjson.OPT_SORT_KEYS)).hexdigest()
        replay = await _replay(request, flow_id, fingerprint)
        if replay is not None:
            return replay
    flow = _build(request, body, flow_id, fingerprint)
    try:
        await conveyor.aenqueue_flow(flow)
    except InvalidFlowError:
        if flow_id is not None:  # a concurrent request with the same key stored it first
            replay = await _replay(request, flow_id, fingerprint)
            if replay is not None:
                return replay
        raise
    jobs = await conveyor.backend.flow_jobs(flow.id)
    return m.json_response(flow_data(flow.id, jobs), 202,
                           {"Location": f"{m.prefix(request)}/v1/flows/{flow.id}"})


async def _replay(request: Request, flow_id: str, fingerprint: str | None) -> Response | None:
    jobs = await (await backend_of(request)).flow_jobs(flow_id)
    if not jobs:
        return None
    stored = jobs[0].meta.get("idempotency") or {}
    if stored.get("fingerprint") != fingerprint:
        raise ProblemError(422, "idempotency-key-reused", "Idempotency-Key reused",
                           "this Idempotency-Key was used with a different flow "
                           f"({flow_id}); use a new key for a new request")
    return m.json_response(flow_data(flow_id, jobs), 202, {
        "Location": f"{m.prefix(request)}/v1/flows/{flow_id}",
        "Idempotent-Replayed": "true"})


@router.get("/flows/{flow_id}", dependencies=READ, summary="A flow: its jobs, states, edges",
            responses=responses(404))
async def get_flow(request: Request, flow_id: FlowId) -> Response:
    jobs = await (await backend_of(request)).flow_jobs(flow_id)
    if not jobs:
        raise ProblemError(404, "unknown-flow", "Unknown flow", f"no flow {flow_id!r}")
    return m.json_response(flow_data(flow_id, jobs))


@router.post("/flows/{flow_id}/cancel", dependencies=ADMIN, responses=responses(403, 404),
             summary="Cancel what has not run of a flow")
async def cancel_flow(request: Request, flow_id: FlowId) -> Response:
    backend = await backend_of(request)
    if not await backend.flow_jobs(flow_id):
        raise ProblemError(404, "unknown-flow", "Unknown flow", f"no flow {flow_id!r}")
    cancelled = await backend.cancel_flow(flow_id)
    return m.json_response({**flow_data(flow_id, await backend.flow_jobs(flow_id)),
                            "cancelled": cancelled})


@router.get("/flows/{flow_id}/events", dependencies=READ, response_class=StreamingResponse,
            summary="Server-Sent Events of a flow's jobs, until the whole flow has ended",
            responses=responses(404))
async def flow_events(request: Request, flow_id: FlowId) -> StreamingResponse:
    """A `flow` snapshot (GET /v1/flows/{id}'s answer) first, then each event of the
    flow's jobs as /v1/jobs/{id}/events sends them, then a last `flow` frame once every
    job has finished. No resume: a reconnecting client gets a fresh snapshot."""
    backend = await backend_of(request)
    hub = hub_of(request)
    sub = await hub.subscribe()
    jobs = await backend.flow_jobs(flow_id)
    if not jobs:
        hub.unsubscribe(sub)
        raise ProblemError(404, "unknown-flow", "Unknown flow", f"no flow {flow_id!r}")
    return StreamingResponse(_flow_stream(hub, sub, backend, flow_id, jobs),
                             media_type="text/event-stream", headers=SSE_HEADERS)


async def _flow_stream(hub: EventHub, sub: Subscription, backend: Backend, flow_id: str,
                       jobs: list[Job]) -> AsyncGenerator[bytes, None]:
    heartbeat = heartbeat_seconds()
    states = {job.id: job.state.value for job in jobs}
    try:
        yield _frame("flow", flow_data(flow_id, jobs), sub.start)
        while not all(s in FINAL_KINDS for s in states.values()):
            events = await sub.get(heartbeat)
            if sub.closed:
                return
            if sub.overflowed:  # events were dropped: start again from a fresh snapshot
                sub.recovered()
                jobs = await backend.flow_jobs(flow_id)
                states = {job.id: job.state.value for job in jobs}
                yield _frame("flow", flow_data(flow_id, jobs), None)
                continue
            if not events:
                yield HEARTBEAT
            for event in events:
                if event.job_id not in states:
                    continue
                yield _event_frame(event)
                if event.kind in STATE_KINDS:
                    states[event.job_id] = event.kind
                if event.kind == "waiting-children":  # it may have spawned children
                    states = {**{j.id: j.state.value for j in await backend.flow_jobs(flow_id)},
                              **states}
        yield _frame("flow", flow_data(flow_id, await backend.flow_jobs(flow_id)), None)
    finally:
        hub.unsubscribe(sub)
