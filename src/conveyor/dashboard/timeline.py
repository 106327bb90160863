"""A job's story as the job page tells it, built from the job record alone (its timestamps
and the error kept for every failed attempt), so it needs no scan of the event stream."""

from __future__ import annotations

from dataclasses import dataclass

from ..jobs import Job, JobState
from .format import duration, error_line


@dataclass(frozen=True)
class Step:
    at: int | None
    kind: str  # a state name (for the color) or "stalled"
    title: str
    detail: str = ""


def timeline(job: Job, now: int) -> list[Step]:
    steps = [Step(job.created_at, "waiting", f"Enqueued on queue {job.queue}",
                  f"priority {job.priority}" if job.priority else "")]
    if job.scheduled_at > job.created_at + 1000 and not job.errors:
        steps.append(Step(job.scheduled_at, "delayed",
                          "Due" if job.scheduled_at <= now else "Will be due",
                          f"delayed by {duration(job.scheduled_at - job.created_at)}"))
    for error in job.errors:
        stalled = error.get("type") == "Stalled"
        steps.append(Step(
            error.get("at"), "stalled" if stalled else "failed",
            f"Attempt {error.get('attempt', '?')} " + ("stalled" if stalled else "failed"),
            error_line(error)))
    if job.started_at is not None:
        steps.append(Step(job.started_at, "active", f"Attempt {job.attempt} started",
                          f"on worker {job.worker}" if job.worker else ""))
    if job.state in (JobState.WAITING, JobState.DELAYED) and job.errors:
        steps.append(Step(job.scheduled_at, job.state.value,
                          "Retry due" if job.scheduled_at > now else "Waiting for a worker",
                          f"attempt {job.attempt + 1} of {job.max_attempts}"))
    if job.cancel_requested and job.state is JobState.ACTIVE:
        steps.append(Step(None, "cancelled", "Cancel requested",
                          "the worker stops the job at its next heartbeat"))
    if job.finished_at is not None and job.is_final:
        ran = (f"ran {duration(job.finished_at - job.started_at)}"
               if job.started_at is not None and job.state is not JobState.CANCELLED else "")
        steps.append(Step(job.finished_at, job.state.value, job.state.value.capitalize(),
                          ran))
    # steps with a time in order; an untimed cancel request stays last
    timed = sorted((s for s in steps if s.at is not None), key=lambda s: s.at or 0)
    return timed + [s for s in steps if s.at is None]
