"""The screens: overview, queue, job, workers and dead letters (all GET, all read-only).

Every page reads at most one page of jobs (cursor pagination) plus the counts that
`queues()` keeps, so it stays fast with any number of jobs stored.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ..backends.base import Backend, JobFilter
from ..errors import InvalidRequestError
from ..flow.why import describe, why_waiting
from ..flows.view import waiting_for
from ..jobs import Job, JobState
from .access import viewer
from .timeline import attempts, timeline
from .views import (
    base_path,
    dashboard_of,
    error_page,
    live_workers,
    queue_rows,
    render,
    totals,
)

PAGE_SIZE = 50
DEAD_SAMPLE = 500  # newest failed jobs grouped on the dead-letter page


def _state_param(request: Request) -> JobState | None:
    raw = request.query_params.get("state", "")
    try:
        return JobState(raw) if raw else None
    except ValueError:
        return None


async def overview(request: Request) -> Response:
    viewer(request)
    dash = dashboard_of(request)
    snap = await dash.live.snapshot()
    rows = queue_rows(snap.queues, snap.workers, snap.now, dash.conveyor.queue_names)
    total = totals(snap.queues)
    return render(request, "overview.html", now=snap.now, dead=total[JobState.FAILED],
                  rows=rows, totals=total, workers=snap.workers,
                  alive=live_workers(snap.workers, snap.now),
                  series=dash.live.throughput.series(snap.now))


async def queue_page(request: Request) -> Response:
    viewer(request)
    dash = dashboard_of(request)
    name = request.path_params["name"]
    snap = await dash.live.snapshot()
    rows = {r["name"]: r for r in queue_rows(snap.queues, snap.workers, snap.now,
                                             dash.conveyor.queue_names)}
    if name not in rows:
        return error_page(request, 404, f"Queue {name} not found",
                          "No job was ever stored in a queue of that name, no task uses it, "
                          "and it was never paused.", now=snap.now,
                          dead=totals(snap.queues)[JobState.FAILED])
    state = _state_param(request)
    search = request.query_params.get("q", "").strip()
    task = request.query_params.get("task", "").strip()
    cursor = request.query_params.get("cursor") or None
    try:
        number = max(int(request.query_params.get("page", "1")), 1)
    except ValueError:
        number = 1
    where = JobFilter(queue=name, states=(state,) if state else (), task=task or None,
                      search=search or None)
    try:
        page = await (await dash.backend()).list_jobs(where, limit=PAGE_SIZE, cursor=cursor)
    except InvalidRequestError as exc:
        return error_page(request, 400, "Bad page link", str(exc), now=snap.now,
                          dead=totals(snap.queues)[JobState.FAILED])
    row = rows[name]
    filtered = bool(search or task)
    known = (row["counts"].get(state, 0) if state else sum(row["counts"].values()))
    return render(request, "queue.html", now=snap.now, dead=totals(snap.queues)[JobState.FAILED],
                  queue=row, state=state, search=search, task=task, jobs=page.jobs,
                  next_cursor=page.next_cursor, number=number, page_size=PAGE_SIZE,
                  matching=None if filtered else known, tasks=sorted(dash.conveyor.tasks),
                  workers=[w for w in live_workers(snap.workers, snap.now) if name in w.queues])


async def job_page(request: Request) -> Response:
    viewer(request)
    dash = dashboard_of(request)
    job_id = request.path_params["job_id"]
    backend = await dash.backend()
    snap = await dash.live.snapshot()
    dead = totals(snap.queues)[JobState.FAILED]
    job = await backend.get(job_id)
    if job is None:
        removed = await backend.tombstone(job_id)
        if removed is not None:
            return error_page(request, 410, "Job removed",
                              f"Job {job_id} existed but was removed (by retention or by an "
                              "operator).", removed_at=removed, now=snap.now, dead=dead)
        return error_page(request, 404, "Job not found",
                          f"No job with id {job_id} exists. Check the id; jobs are never "
                          "shown as pending when they do not exist.", now=snap.now, dead=dead)
    return render(request, "job.html", now=snap.now, dead=dead,
                  **job_context(job, snap.now, await waiting_of(backend, job)))


async def waiting_of(backend: Backend, job: Job) -> list[str]:
    """Why a waiting or delayed job is not running, one sentence per reason."""
    if job.state is JobState.WAITING_CHILDREN:  # a flow's job (conveyor/flows)
        return [waiting_for(job) or ""]
    return [describe(r) for r in await why_waiting(backend, job)]


def job_context(job: Job, now: int, waiting: list[str] | None = None) -> dict[str, Any]:
    return {"job": job, "timeline": timeline(job, now), "attempts": attempts(job),
            "waiting": waiting or []}


FIND_SCAN = 50_000  # jobs, newest first, that "go to job" looks through for a fragment


async def find_job(request: Request) -> Response:
    """The header's "go to job" box: a whole id, or any part of one that starts or ends
    it (lists show the last 12 characters) and matches a single job."""
    viewer(request)
    fragment = request.query_params.get("id", "").strip().lstrip("…").strip().lower()
    if not fragment:
        return RedirectResponse(base_path(request) + "/", status_code=303)
    backend = await dashboard_of(request).backend()
    found = [fragment] if await backend.get(fragment) is not None else \
        await _ids_with(backend, fragment)
    if len(found) == 1:
        return RedirectResponse(f"{base_path(request)}/jobs/{quote(found[0], safe='')}",
                                status_code=303)
    if not found:
        return error_page(request, 404, "Job not found",
                          f"No job id starts or ends with {fragment!r} (among the newest "
                          f"{FIND_SCAN:,} jobs).")
    return error_page(request, 409, "Several jobs match",
                      f"Job ids {', '.join(found)} all start or end with {fragment!r}: "
                      "type more of the id.")


async def _ids_with(backend: Backend, fragment: str, want: int = 3) -> list[str]:
    """Ids of the newest jobs that start or end with `fragment` (at most `want`)."""
    found: list[str] = []
    cursor = None
    for _ in range(FIND_SCAN // 1000):
        page = await backend.list_jobs(JobFilter(), 1000, cursor)
        found += [j.id for j in page.jobs if j.id.startswith(fragment) or j.id.endswith(fragment)]
        cursor = page.next_cursor
        if len(found) >= want or cursor is None:
            break
    return found[:want]


async def workers_page(request: Request) -> Response:
    viewer(request)
    snap = await dashboard_of(request).live.snapshot()
    return render(request, "workers.html", now=snap.now, dead=totals(snap.queues)[JobState.FAILED],
                  workers=sorted(snap.workers, key=lambda w: (w.host, w.group or '', w.pid)))


def group_failures(jobs: list[Job]) -> list[dict[str, Any]]:
    """Failed jobs grouped by the type of their last error, biggest group first."""
    groups: OrderedDict[str, dict[str, Any]] = OrderedDict()
    for job in jobs:
        error = job.last_error or {}
        kind = str(error.get("type") or "Error")
        group = groups.setdefault(kind, {"type": kind, "count": 0, "queues": set(),
                                         "tasks": set(), "latest": job, "message": ""})
        group["count"] += 1
        group["queues"].add(job.queue)
        group["tasks"].add(job.task)
        if not group["message"]:
            group["message"] = error.get("message") or ""
    return sorted(groups.values(), key=lambda g: -int(g["count"]))


async def dead_page(request: Request) -> Response:
    viewer(request)
    dash = dashboard_of(request)
    backend = await dash.backend()
    snap = await dash.live.snapshot()
    dead = totals(snap.queues)[JobState.FAILED]
    kind = request.query_params.get("type", "").strip()
    sample = await backend.list_jobs(JobFilter(states=(JobState.FAILED,)), limit=DEAD_SAMPLE)
    groups = group_failures(sample.jobs)
    listed: list[Job] = []
    next_cursor = None
    if kind:
        cursor = request.query_params.get("cursor") or None
        try:
            page = await backend.list_jobs(JobFilter(states=(JobState.FAILED,), search=kind),
                                           limit=PAGE_SIZE, cursor=cursor)
        except InvalidRequestError as exc:
            return error_page(request, 400, "Bad page link", str(exc), now=snap.now, dead=dead)
        listed = [j for j in page.jobs if str((j.last_error or {}).get("type") or "Error") == kind]
        next_cursor = page.next_cursor
    per_queue = [(q.name, q.counts.get(JobState.FAILED, 0)) for q in snap.queues
                 if q.counts.get(JobState.FAILED, 0)]
    return render(request, "dead.html", now=snap.now, dead=dead, groups=groups,
                  sampled=len(sample.jobs), sample_complete=sample.next_cursor is None,
                  per_queue=per_queue, kind=kind, listed=listed, next_cursor=next_cursor)


routes = [
    Route("/", overview, name="overview"),
    Route("/queues/{name}", queue_page, name="queue"),
    Route("/jobs/{job_id}", job_page, name="job"),
    Route("/find", find_job, name="find"),
    Route("/workers", workers_page, name="workers"),
    Route("/dead", dead_page, name="dead"),
]
