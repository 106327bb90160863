"""What an admin can do: act on one job, on a selection or on everything a filter matches,
pause and resume queues, clean old finished jobs and replay dead letters.

Every action is a POST form that passed `admin_form` (CSRF token, same origin, admin
role), runs as the backend's own bulk verbs (each one atomic), and answers with a redirect
back to the page it came from and a one-line message saying what happened.
"""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ..backends.base import Backend, JobFilter
from ..errors import InvalidJobError, UnknownQueueError
from ..jobs import JobState
from ..operations import ACTION_STATES, act
from .access import admin_form
from .session import session_of
from .views import base_path, dashboard_of, error_page

ACTIONS = {  # verb: (past tense, the states it applies to: written once, in the core)
    verb: (past, ACTION_STATES[verb])
    for verb, past in (("retry", "Retried"), ("cancel", "Cancelled"), ("promote", "Promoted"),
                       ("remove", "Removed"))
}
BATCH = 500
UNITS_MS = {"minutes": 60_000, "hours": 3_600_000, "days": 86_400_000}


def _back(request: Request, path: str, flash: tuple[str, str] | None = None,
          **query: str) -> RedirectResponse:
    dashboard_of(request).live.invalidate()
    if flash is not None:
        session_of(request).set_flash(*flash)
    clean = {k: v for k, v in query.items() if v}
    suffix = ("?" + urlencode(clean)) if clean else ""
    return RedirectResponse(base_path(request) + path + suffix, status_code=303)


async def _run(backend: Backend, verb: str, where: JobFilter) -> list[str]:
    return await act(backend, verb, where)


def _jobs(n: int) -> str:
    return f"{n:,} job" + ("" if n == 1 else "s")


def _text(form: FormData, key: str) -> str:
    value = form.get(key)
    return value.strip() if isinstance(value, str) else ""


async def job_action(request: Request) -> Response:
    await admin_form(request)
    job_id, verb = request.path_params["job_id"], request.path_params["action"]
    if verb not in ACTIONS:
        return error_page(request, 404, "No such action", f"There is no action {verb!r}.")
    backend = await dashboard_of(request).backend()
    before = await backend.get(job_id)
    if before is None:
        return error_page(request, 404, "Job not found", f"No job with id {job_id} exists.")
    done = await _run(backend, verb, JobFilter(ids=(job_id,)))
    past, allowed = ACTIONS[verb]
    if not done:
        states = ", ".join(s.value for s in allowed)
        return _back(request, f"/jobs/{job_id}", ("error", f"Cannot {verb} this job: it is "
                                                  f"{before.state.value} ({verb} applies to "
                                                  f"{states} jobs)."))
    if verb == "remove":
        return _back(request, f"/queues/{before.queue}", ("ok", f"Removed job {job_id}."))
    if verb == "cancel" and before.state is JobState.ACTIVE:
        return _back(request, f"/jobs/{job_id}",
                     ("ok", "Cancel requested: the worker stops the job at its next heartbeat."))
    return _back(request, f"/jobs/{job_id}", ("ok", f"{past} the job."))


async def bulk_action(request: Request) -> Response:
    """On the ticked jobs (scope=selected) or on all the filter matches (scope=matching)."""
    _, form = await admin_form(request)
    name = request.path_params["name"]
    verb, scope = _text(form, "action"), _text(form, "scope")
    state, search, task = _text(form, "state"), _text(form, "q"), _text(form, "task")
    back = {"state": state, "q": search, "task": task}
    if verb not in ACTIONS:
        return _back(request, f"/queues/{name}", ("error", "Choose an action."), **back)
    try:
        states = (JobState(state),) if state else ()
    except ValueError:
        return _back(request, f"/queues/{name}", ("error", f"Unknown state {state!r}."))
    backend = await dashboard_of(request).backend()
    if scope == "selected":
        ids = tuple(v for v in form.getlist("ids") if isinstance(v, str) and v)
        if not ids:
            return _back(request, f"/queues/{name}", ("error", "No job was selected."), **back)
        done: list[str] = []
        for start in range(0, len(ids), BATCH):
            done += await _run(backend, verb, JobFilter(queue=name, ids=ids[start:start + BATCH]))
        skipped = len(ids) - len(done)
        note = f" ({_jobs(skipped)} skipped: not in a state {verb} applies to)" if skipped else ""
        return _back(request, f"/queues/{name}",
                     ("ok", f"{ACTIONS[verb][0]} {_jobs(len(done))}{note}."), **back)
    if scope == "matching":
        where = JobFilter(queue=name, states=states, task=task or None, search=search or None)
        done = await _run(backend, verb, where)
        return _back(request, f"/queues/{name}",
                     ("ok", f"{ACTIONS[verb][0]} {_jobs(len(done))} matching the filter."),
                     **back)
    return _back(request, f"/queues/{name}", ("error", "Choose the selection or all matching."),
                 **back)


async def pause(request: Request) -> Response:
    _, form = await admin_form(request)
    name = request.path_params["name"]
    paused = _text(form, "paused") == "1"
    dash = dashboard_of(request)
    await dash.backend()  # opens the app's backend on this loop
    try:
        await (dash.conveyor.apause_queue if paused else dash.conveyor.aresume_queue)(name)
    except (InvalidJobError, UnknownQueueError) as exc:  # a bad name, or no such queue
        return _back(request, "/", ("error", str(exc)))
    text = (f"Paused queue {name}: workers take no new jobs from it." if paused
            else f"Resumed queue {name}.")
    return _back(request, f"/queues/{name}", ("ok", text))


async def clean(request: Request) -> Response:
    """Remove finished jobs older than N minutes/hours/days (by when they finished)."""
    _, form = await admin_form(request)
    name = request.path_params["name"]
    try:
        state = JobState(_text(form, "state"))
        amount = float(_text(form, "age"))
        unit_ms = UNITS_MS[_text(form, "unit")]
    except (ValueError, KeyError):
        return _back(request, f"/queues/{name}",
                     ("error", "Clean needs a finished state and an age like 2 hours."))
    if not state.is_final or amount < 0:
        return _back(request, f"/queues/{name}",
                     ("error", "Clean removes completed, failed or cancelled jobs only."))
    backend = await dashboard_of(request).backend()
    cutoff = await backend.now() - int(amount * unit_ms)
    removed = 0
    cursor: str | None = None
    while True:  # one page of ids at a time, so memory stays flat with any number of jobs
        page = await backend.list_jobs(JobFilter(queue=name, states=(state,)), limit=BATCH,
                                       cursor=cursor)
        old = tuple(j.id for j in page.jobs if (j.finished_at or j.created_at) < cutoff)
        if old:
            removed += len(await act(backend, "remove", JobFilter(queue=name, states=(state,),
                                                           ids=old)))
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    age = f"{amount:g} {_text(form, 'unit')}"
    return _back(request, f"/queues/{name}",
                 ("ok", f"Removed {_jobs(removed)} {state.value} more than {age} ago."),
                 state=state.value)


async def replay(request: Request) -> Response:
    """Dead letters back to waiting: one job, one error type's group, or all of them."""
    _, form = await admin_form(request)
    scope = _text(form, "scope")
    backend = await dashboard_of(request).backend()
    failed = (JobState.FAILED,)
    if scope == "one":
        job_id = _text(form, "id")
        done = await act(backend, "retry", JobFilter(states=failed, ids=(job_id,)))
        text = f"Replayed job {job_id}." if done else f"Job {job_id} is no longer failed."
        return _back(request, "/dead", ("ok" if done else "error", text),
                     type=_text(form, "type"))
    if scope == "group":
        kind = _text(form, "type")
        replayed = await _replay_group(backend, kind)
        return _back(request, "/dead", ("ok", f"Replayed {_jobs(replayed)} that failed with "
                                              f"{kind}."))
    if scope == "all":
        queue = _text(form, "queue") or None
        done = await act(backend, "retry", JobFilter(queue=queue, states=failed))
        where = f" of queue {queue}" if queue else ""
        return _back(request, "/dead", ("ok", f"Replayed all {_jobs(len(done))} failed{where}."))
    return _back(request, "/dead", ("error", "Choose what to replay."))


async def _replay_group(backend: Backend, kind: str) -> int:
    """Every failed job whose last error has this type (found a page at a time)."""
    if not kind:
        return 0
    replayed = 0
    cursor: str | None = None
    failed = (JobState.FAILED,)
    while True:
        page = await backend.list_jobs(JobFilter(states=failed, search=kind), limit=BATCH,
                                       cursor=cursor)
        ids = tuple(j.id for j in page.jobs
                    if str((j.last_error or {}).get("type") or "Error") == kind)
        if ids:
            replayed += len(await act(backend, "retry", JobFilter(states=failed, ids=ids)))
        if page.next_cursor is None:
            return replayed
        cursor = page.next_cursor


routes = [
    Route("/jobs/{job_id}/{action}", job_action, methods=["POST"]),
    Route("/queues/{name}/bulk", bulk_action, methods=["POST"]),
    Route("/queues/{name}/pause", pause, methods=["POST"]),
    Route("/queues/{name}/clean", clean, methods=["POST"]),
    Route("/dead/replay", replay, methods=["POST"]),
]
