"""A flow as the HTTP API, the CLI and the dashboard show it: its state as a whole, its
jobs with their dependencies, and why a job still waits ("2 of 5 dependencies left")."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from ..jobs import Job, JobState

_UNFINISHED = (JobState.ACTIVE, JobState.WAITING, JobState.DELAYED, JobState.WAITING_CHILDREN)


def flow_state(jobs: Sequence[Job]) -> str:
    """running while any job has not finished; then completed if all completed, else
    failed if any failed, else cancelled."""
    states = {job.state for job in jobs}
    if states & set(_UNFINISHED):
        return "running"
    if states == {JobState.COMPLETED}:
        return "completed"
    return "failed" if JobState.FAILED in states else "cancelled"


def waiting_for(job: Job) -> str | None:
    """Why a job waits for its dependencies, as a sentence (None if it does not)."""
    if job.state is not JobState.WAITING_CHILDREN:
        return None
    return f"{job.waits} of {len(job.parents)} dependencies left"


def flow_data(flow_id: str, jobs: Sequence[Job]) -> dict[str, Any]:
    """The JSON form: id, state, counts per state, jobs (in the order added), edges."""
    return {
        "id": flow_id,
        "state": flow_state(jobs),
        "counts": dict(Counter(job.state.value for job in jobs)),
        "jobs": [{"id": job.id, "task": job.task, "queue": job.queue,
                  "state": job.state.value, "parents": job.parents,
                  "waiting_for": waiting_for(job)} for job in jobs],
        "edges": [{"from": parent, "to": job.id, "on_failure": policy}
                  for job in jobs for parent, policy in job.parents.items()],
    }
