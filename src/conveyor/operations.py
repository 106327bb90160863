"""Operator actions on jobs and queues, and which states each applies to (written once).

The app's `cancel_job` / `acancel_job`, `retry_job`, `promote_job`, `remove_job`, their
by-filter forms (`cancel_jobs(JobFilter(...))` ...) and `pause_queue` / `resume_queue`
are what the HTTP API, the dashboard and the CLI call; none of them names a backend verb.
An action on one job that does not apply to its state raises JobStateError saying which
states it applies to; by filter, jobs in other states are left alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from .backends.base import Backend, JobFilter
from .errors import JobStateError
from .jobs import Job, JobState

ACTION_STATES: Mapping[str, tuple[JobState, ...]] = {
    "cancel": (JobState.WAITING, JobState.DELAYED, JobState.ACTIVE, JobState.WAITING_CHILDREN),
    "retry": (JobState.FAILED, JobState.CANCELLED),
    "promote": (JobState.DELAYED,),
    "remove": tuple(s for s in JobState if s is not JobState.ACTIVE),
}


def applies(action: str, state: JobState) -> bool:
    """Whether `action` can change a job in `state` (what buttons and menus offer)."""
    return state in ACTION_STATES[action]


def refused(action: str, job: Job) -> JobStateError:
    allowed = ", ".join(s.value for s in ACTION_STATES[action])
    return JobStateError(f"cannot {action} job {job.id}: it is {job.state.value} "
                         f"(only {allowed} jobs)")


def narrowed(action: str, where: JobFilter) -> JobFilter:
    """`where`, limited to the states `action` applies to."""
    allowed = ACTION_STATES[action]
    states = tuple(s for s in where.states if s in allowed) if where.states else allowed
    if not states:  # asked only for states the action cannot change: match nothing
        return dataclasses.replace(where, states=(), ids=("",))
    return dataclasses.replace(where, states=states)


async def act(backend: Backend, action: str, where: JobFilter) -> list[str]:
    """Apply one action to the jobs `where` selects; the ids it changed."""
    changed: list[str] = await getattr(backend, action)(narrowed(action, where))
    return changed
