"""What a flow's job gets when it runs: its dependencies' outcomes, and the result one
of them passes to a parameter (``pass_result``). Read by the worker before the attempt,
only for jobs whose meta carries the flow entry (jobs without dependencies pay a dict
lookup); a job that spawned children reads theirs when it asks (`WorkerFlowAccess`)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from ..backends.base import Backend, Lease, NewJob
from ..errors import ConveyorError
from ..jobs import Job, JobState
from . import META

if TYPE_CHECKING:
    from ..app import Conveyor


async def dependencies(backend: Backend, job: Job) -> dict[str, dict[str, Any]]:
    """Each dependency's id -> {task, state, result, error}, in the flow's order."""
    entry = job.meta.get(META) or {}
    out: dict[str, dict[str, Any]] = {}
    for parent_id in entry.get("parents", job.parents):
        parent = await backend.get(parent_id)
        if parent is None:
            out[parent_id] = {"task": None, "state": None, "result": None, "error": None}
            continue
        out[parent_id] = {"task": parent.task, "state": parent.state.value,
                          "result": parent.result if parent.state is JobState.COMPLETED
                          else None, "error": parent.last_error
                          if parent.state is not JobState.COMPLETED else None}
    return out


def with_result(job: Job, deps: dict[str, dict[str, Any]]) -> Job:
    """The job with its `pass_result` parameter set from its dependencies."""
    entry = job.meta.get(META) or {}
    name = entry.get("pass")
    if not name:
        return job
    results = [d["result"] for d in deps.values()]
    value = results if entry.get("into") == "list" else (results[0] if results else None)
    return dataclasses.replace(job, kwargs={**job.kwargs, name: value})


class WorkerFlowAccess:
    """`current_job().spawn()` and the lazy `dependency_results()` of a job a worker
    runs: blocking backend calls on the caller's thread (the backend's inline mode)."""

    __slots__ = ("app", "lease")

    def __init__(self, app: Conveyor, lease: Lease) -> None:
        self.app = app
        self.lease = lease

    def _backend(self) -> Backend:
        backend = self.app.backend
        if not backend.capabilities.inline_sync:
            raise ConveyorError(f"{type(backend).__name__}: flows from inside a task need "
                                "a backend with inline calls (SQLite, Redis)")
        return backend

    def dependencies(self) -> dict[str, dict[str, Any]]:
        backend = self._backend()
        job = backend.run_inline(backend.get, self.lease.job_id)
        if job is None or not job.parents:
            return {}
        return backend.run_inline(dependencies, backend, job)

    def spawn(self, jobs: tuple[NewJob, ...]) -> list[str]:
        backend = self._backend()
        return [job.id for job in backend.run_inline(backend.spawn, self.lease, jobs)]
