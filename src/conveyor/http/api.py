"""The /v1 routes for jobs, queues, workers and tasks (the SSE routes live in events.py).

Enqueue is ``POST /v1/tasks/{task}/jobs``: the task is a resource of its own, so an
unknown task and a task that is not exposed over HTTP are the same answer, 404 (the
existence of internal tasks is not revealed). The accept path does one backend round
trip: validate the body and the arguments, `enqueue`, answer 202.

Idempotency (IETF draft "The Idempotency-Key HTTP Header Field"): the header's key
becomes the job's dedup key, namespaced ``idem:<task>/<key>``, and a SHA-256 of the task
and the canonical body is kept in the job's ``meta.idempotency``. A key is scoped to what
the request creates: the task it is POSTed to and the queue the job goes to (the
backend's dedup keys are per queue), so the same key sent to another task, or with
``options.queue`` naming another queue, is another request. The backend's enqueue is one
atomic operation that returns the existing job for a known key, so concurrent duplicates
can never make two jobs: every one of them gets the same job (202, same id). A replay
whose body differs gets 422. There is no "still in flight" window to answer 409 for: the
first request's job exists completely or not at all. A key is honoured as long as its job
is kept (retention: 24 h after completion by default).
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from starlette.routing import Route

from .. import queues
from ..backends.base import JobFilter
from ..dedup import Dedup
from ..errors import InvalidOptionError
from ..flow.why import as_json, why_waiting
from ..flows.view import waiting_for
from ..jobs import Job, JobState
from ..task import MAX_KEY_LENGTH, MAX_QUEUE_NAME
from ..web.keys import HASHED_IDEMPOTENCY_PREFIX, IDEMPOTENCY_PREFIX
from . import models as m
from .batching import EnqueueBatcher
from .body import check_numbers, idempotency_key, json_body_type, parse_enqueue
from .deps import admin_access, admin_of, backend_of, conveyor_of, read_access
from .events import hub_of, wait_for_change
from .problems import ProblemError, responses

MAX_WAIT_SECONDS = 60.0

READ = [Depends(read_access)]
ADMIN = [Depends(admin_access)]
router = APIRouter(responses=responses(401, 422, 503))
JobId = Annotated[str, Path(description="The job's id.", max_length=200)]
Wait = Annotated[float, Query(ge=0, le=MAX_WAIT_SECONDS, description=(
    "Long-poll: answer when the job's state changes (or is final), at most this many "
    "seconds from now."))]


# -- enqueue -----------------------------------------------------------------------------
def batcher_of(request: Request) -> EnqueueBatcher:
    batcher: EnqueueBatcher = request.app.state.batcher
    return batcher


def _job_key(task: str, idempotency_key: str) -> str:
    # namespaced apart from options.key, scoped to the task (the queue scopes it too, in
    # the backend); check_options caps keys at MAX_KEY_LENGTH
    key = f"{IDEMPOTENCY_PREFIX}{task}/{idempotency_key}"
    if len(key) <= MAX_KEY_LENGTH:
        return key
    digest = hashlib.sha256(f"{task}\0{idempotency_key}".encode()).hexdigest()
    return HASHED_IDEMPOTENCY_PREFIX + digest


def _options(body: m.EnqueueRequest) -> dict[str, Any]:
    options = body.options.model_dump(exclude_none=True)
    key = options.get("key")
    if isinstance(key, str) and key.startswith((IDEMPOTENCY_PREFIX,
                                                HASHED_IDEMPOTENCY_PREFIX)):
        raise _field_problem(["body", "options", "key"],
                             "keys starting with 'idem:' are reserved for Idempotency-Key")
    if "dedup" in options:
        try:
            options["dedup"] = Dedup(**options["dedup"])
        except InvalidOptionError as exc:
            raise _field_problem(["body", "options", "dedup"], str(exc)) from None
    return options


def _field_problem(loc: list[str | int], msg: str) -> ProblemError:
    return ProblemError(422, "validation", "The request did not validate",
                        f"{'.'.join(str(p) for p in loc)}: {msg}",
                        errors=[{"loc": loc, "msg": msg, "type": "value_error"}])


_ENQUEUE_DOC: dict[str, Any] = {
    "security": [{"HTTPBearer": []}],
    "parameters": [{
        "name": "Idempotency-Key", "in": "header", "required": False,
        "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH,
                   "pattern": "^[ -~]+$"},
        "description": "Makes the request safe to retry: the same key and body return the "
                       "original job (202, same id, Idempotent-Replayed: true); the same key "
                       "with another body is refused (422). Printable ASCII."}],
    "requestBody": {"required": False, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/EnqueueRequest"}}}},
}


@router.post(
    "/tasks/{task}/jobs", status_code=202, response_model=m.JobAccepted,
    tags=["jobs"], summary="Enqueue a job of an exposed task", openapi_extra=_ENQUEUE_DOC,
    description="Validates the arguments against the task's signature, stores one job and "
                "answers 202 at once. An empty body calls the task without arguments.",
    responses={**responses(400, 403, 404, 413, 415, 422),
               202: {"description": "Accepted: follow the job at Location.",
                     "headers": {"Location": {"schema": {"type": "string"}},
                                 "Retry-After": {"schema": {"type": "string"}}}}},
)
async def enqueue(
    request: Request,
    task: Annotated[str, Path(description="The task's name.", max_length=200)],
) -> Response:
    """Documents the enqueue route; `accept_route` serves it (the same handler)."""
    return await _enqueue(request, task)


async def _accept(request: Request) -> Response:
    task: str = request.path_params["task"]
    if len(task) > 200:  # as the documented route's path parameter says
        raise _field_problem(["path", "task"], "String should have at most 200 characters")
    return await _enqueue(request, task)


def accept_route() -> Route:
    """The enqueue route as a plain Starlette route, for the app to put first.

    FastAPI's routing and dependency solving cost more than storing the job; this route
    skips both (it reads auth, body and header itself) and answers exactly as the
    documented route above, whose OpenAPI entry (_ENQUEUE_DOC) describes it.
    """
    return Route("/v1/tasks/{task}/jobs", _accept, methods=["POST"], include_in_schema=False)


async def _enqueue(request: Request, task: str) -> Response:
    admin_of(request)
    conveyor = conveyor_of(request)
    target = conveyor.tasks.get(task)
    if target is None or not target.exposed:
        exposed = sorted(name for name, t in conveyor.tasks.items() if t.exposed)
        raise ProblemError(404, "unknown-task", "Unknown task",
                           f"no task {task!r} is exposed over HTTP"
                           + (f" (exposed: {', '.join(exposed)})" if exposed else ""))
    json_body_type(request)
    body = parse_enqueue(await request.body())
    check_numbers(task, target.fn, body)
    options = _options(body)
    fingerprint = None
    idem = idempotency_key(request)
    if idem is not None:
        if "key" in options:
            raise _field_problem(["body", "options", "key"],
                                 "give either options.key or the Idempotency-Key header")
        fingerprint = body.fingerprint(task)
        options["key"] = _job_key(task, idem)
        options["meta"] = {**options.get("meta", {}),
                           "idempotency": {"key": idem, "fingerprint": fingerprint}}
    prepared = (target.options(**options) if options else target).prepare(
        *body.args, **body.kwargs)
    handle = await batcher_of(request).enqueue(prepared)
    job = handle.job
    headers = {}
    if fingerprint is not None and not handle.created:
        stored = job.meta.get("idempotency") if isinstance(job.meta, dict) else None
        if not isinstance(stored, dict) or stored.get("fingerprint") != fingerprint:
            raise ProblemError(422, "idempotency-key-reused", "Idempotency-Key reused",
                               "this Idempotency-Key was used with a different request body "
                               f"(job {job.id}); use a new key for a new request")
        headers["Idempotent-Replayed"] = "true"
    base = m.prefix(request)
    headers["Location"] = f"{base}/v1/jobs/{job.id}"
    headers["Retry-After"] = m.retry_after(job) or "1"
    return m.json_response(m.accepted(job, handle.created, base), 202, headers)


@router.get("/tasks", response_model=list[m.TaskInfo], dependencies=READ, tags=["tasks"],
            summary="Tasks that can be enqueued over HTTP")
async def tasks(request: Request) -> list[dict[str, Any]]:
    base = m.prefix(request)
    return [{"name": name, "queue": t.defaults.queue,
             "description": (t.fn.__doc__ or "").strip() or None,
             "enqueue_url": f"{base}/v1/tasks/{name}/jobs"}
            for name, t in sorted(conveyor_of(request).tasks.items()) if t.exposed]


# -- following a job ---------------------------------------------------------------------
async def _job(request: Request, job_id: str, wait: float = 0.0) -> Job:
    if wait > 0:
        return await wait_for_change(hub_of(request), conveyor_of(request), job_id, wait)
    return (await conveyor_of(request).aget_job(job_id)).job


def _status_response(request: Request, job: Job) -> Response:
    after = m.retry_after(job)
    return m.json_response(m.job_status(job, m.prefix(request)),
                           headers={"Retry-After": after} if after else None)


@router.get("/jobs/{job_id}", response_model=m.JobStatus, dependencies=READ, tags=["jobs"],
            summary="A job's state, progress, result or error",
            description="A waiting or delayed job also says why it is not running "
                        "(`waiting_reasons`: delayed, queue paused, rate limited, paused by "
                        "RateLimited, concurrency full, no worker).",
            responses=responses(404, 410, 422))
async def get_job(request: Request, job_id: JobId, wait: Wait = 0.0) -> Response:
    job = await _job(request, job_id, wait)
    after = m.retry_after(job)
    reasons = [as_json(r) for r in await why_waiting(await backend_of(request), job)] \
        if job.state in (JobState.WAITING, JobState.DELAYED) else []
    if job.state is JobState.WAITING_CHILDREN:  # flows: its dependencies have not finished
        reasons = [{"reason": "waiting_children", "detail": waiting_for(job)}]
    return m.json_response({**m.job_status(job, m.prefix(request)), "waiting_reasons": reasons},
                           headers={"Retry-After": after} if after else None)


@router.get("/jobs/{job_id}/result", response_model=m.JobResult, dependencies=READ,
            tags=["jobs"], summary="A completed job's result",
            description="200 with the result once completed; 409 (`job-not-finished`, with "
                        "Retry-After) before that, `job-failed` (with the error) or "
                        "`job-cancelled` after a failure or cancellation.",
            responses=responses(404, 409, 410, 422))
async def get_result(request: Request, job_id: JobId, wait: Wait = 0.0) -> Response:
    job = await _job(request, job_id, wait)
    if job.state is JobState.COMPLETED:
        return m.json_response({"id": job.id, "state": job.state.value, "result": job.result})
    if job.state is JobState.FAILED:
        raise ProblemError(409, "job-failed", "Job failed", f"job {job.id} failed",
                           error=job.last_error)
    if job.state is JobState.CANCELLED:
        raise ProblemError(409, "job-cancelled", "Job cancelled", f"job {job.id} was cancelled")
    raise ProblemError(409, "job-not-finished", "Job not finished",
                       f"job {job.id} is {job.state.value}",
                       headers={"Retry-After": m.retry_after(job) or "1"})


# -- acting on a job ---------------------------------------------------------------------
async def _act(request: Request, action: str, job_id: str) -> Job | None:
    """One operator action through the app (which states it applies to: operations.py)."""
    conveyor = conveyor_of(request)
    await backend_of(request)  # opens the app's backend for this process
    actions = {"cancel": conveyor.acancel_job, "retry": conveyor.aretry_job,
               "remove": conveyor.aremove_job}
    return await actions[action](job_id)


@router.post("/jobs/{job_id}/cancel", response_model=m.JobStatus, dependencies=ADMIN,
             tags=["jobs"], summary="Cancel a job",
             description="A waiting or delayed job ends cancelled at once; a running job "
                         "gets a cancel request (`cancel_requested`) its worker acts on.",
             responses=responses(403, 404, 409, 410, 422))
async def cancel_job(request: Request, job_id: JobId) -> Response:
    job = await _act(request, "cancel", job_id)
    assert job is not None
    return _status_response(request, job)


@router.post("/jobs/{job_id}/retry", response_model=m.JobStatus, dependencies=ADMIN,
             tags=["jobs"], summary="Replay a failed or cancelled job",
             responses=responses(403, 404, 409, 410, 422))
async def retry_job(request: Request, job_id: JobId) -> Response:
    job = await _act(request, "retry", job_id)
    assert job is not None
    return _status_response(request, job)


@router.delete("/jobs/{job_id}", status_code=204, dependencies=ADMIN, tags=["jobs"],
               summary="Remove a job that is not running (later lookups answer 410)",
               responses=responses(403, 404, 409, 410, 422),
               response_class=Response)
async def delete_job(request: Request, job_id: JobId) -> Response:
    await _act(request, "remove", job_id)
    return Response(status_code=204)


# -- listings ----------------------------------------------------------------------------
QueueName = Annotated[str, Path(min_length=1, max_length=MAX_QUEUE_NAME,
                                pattern=m.QUEUE_PATTERN)]
QueueFilter = Annotated[str | None, Query(min_length=1, max_length=MAX_QUEUE_NAME,
                                          pattern=m.QUEUE_PATTERN)]


@router.get("/jobs", response_model=m.JobPage, dependencies=READ, tags=["jobs"],
            summary="List jobs, newest first, with cursor pagination",
            responses=responses(400, 422))
async def list_jobs(
    request: Request,
    queue: QueueFilter = None,
    state: Annotated[list[JobState] | None, Query(description="Repeat for several.")] = None,
    task: Annotated[str | None, Query(max_length=200)] = None,
    search: Annotated[str | None, Query(max_length=200, description=(
        "Text in the id, arguments or errors."))] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(max_length=200, pattern=m.CURSOR_PATTERN, description=(
        "From the previous page's `next_cursor`: an opaque token (base64url, no padding) "
        "that only this server makes; any other answers 400."))] = None,
) -> Response:
    where = JobFilter(queue=queue,
                      states=tuple(state or ()), task=task, search=search or None)
    page = await (await backend_of(request)).list_jobs(where, limit, cursor)
    base = m.prefix(request)
    next_url = None
    headers = None
    if page.next_cursor is not None:
        url = request.url.include_query_params(cursor=page.next_cursor)
        next_url = f"{url.path}?{url.query}"
        headers = {"Link": f'<{next_url}>; rel="next"'}
    return m.json_response({"items": [m.job_status(job, base) for job in page.jobs],
                            "next_cursor": page.next_cursor, "next": next_url}, 200, headers)


@router.get("/queues", response_model=list[m.QueueStatus], dependencies=READ, tags=["queues"],
            summary="Queues with counts per state, paused flag and oldest waiting age")
async def list_queues(request: Request) -> Response:
    backend = await backend_of(request)
    infos = await backend.queues()
    now = await backend.now()
    return m.json_response([m.queue_status(info, now) for info in infos])


Create = Annotated[bool, Query(description=(
    "Pause a queue that does not exist yet (no jobs, no task uses it) ahead of its first "
    "job; without it such a name answers 404, so a typo makes no queue."))]


async def _pause(request: Request, name: str, paused: bool, create: bool) -> Response:
    app = conveyor_of(request)
    await (app.apause_queue if paused else app.aresume_queue)(name, create=create)
    backend = await backend_of(request)
    info = queues.find(await backend.queues(), name)
    if info is not None:
        return m.json_response(m.queue_status(info, await backend.now()))
    return m.json_response({"name": name, "paused": paused,
                            "counts": {s.value: 0 for s in JobState},
                            "oldest_waiting_at": None, "oldest_waiting_age_seconds": None})


@router.post("/queues/{name}/pause", response_model=m.QueueStatus, dependencies=ADMIN,
             tags=["queues"], summary="Pause a queue: workers stop claiming its jobs",
             responses=responses(403, 404, 422))
async def pause_queue(request: Request, name: QueueName, create: Create = False) -> Response:
    return await _pause(request, name, True, create)


@router.post("/queues/{name}/resume", response_model=m.QueueStatus, dependencies=ADMIN,
             tags=["queues"], summary="Resume a paused queue",
             responses=responses(403, 404, 422))
async def resume_queue(request: Request, name: QueueName, create: Create = False) -> Response:
    return await _pause(request, name, False, create)


@router.delete("/queues/{name}", status_code=204, dependencies=ADMIN, tags=["queues"],
               summary="Delete an empty queue (it leaves every listing)",
               description="409 while the queue holds jobs of any state; 404 for a name "
                           "that is no queue.",
               responses=responses(403, 404, 409, 422), response_class=Response)
async def delete_queue(request: Request, name: QueueName) -> Response:
    await conveyor_of(request).adelete_queue(name)
    return Response(status_code=204)


@router.get("/workers", response_model=list[m.WorkerStatus], dependencies=READ,
            tags=["workers"], summary="Live workers (refreshed by their heartbeat)")
async def list_workers(request: Request) -> Response:
    workers = await (await backend_of(request)).workers()
    return m.json_response([m.worker_status(w) for w in workers])
