"""What a flow's job gets when it runs: its dependencies' outcomes, and the result one
of them passes to a parameter (``pass_result``). Read by the worker before the attempt,
only for jobs whose meta carries the flow entry (jobs without dependencies pay a dict
lookup)."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..backends.base import Backend
from ..jobs import Job, JobState
from . import META


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
