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


@dataclass(frozen=True)
class Attempts:
    """Attempt numbers across manual retries. A retry by hand gives a job a fresh set of
    attempts (its counter restarts at 1) and keeps every earlier error, so the page counts
    attempts over the job's whole life: the third error is attempt 3, whichever run it
    belonged to."""

    numbers: tuple[int, ...]  # the overall number of each error entry
    retried_before: tuple[int, ...]  # errors that a retry by hand came just before
    retried_since: bool  # retried by hand after the last error
    offset: int  # attempts of the runs before the current one

    @property
    def retried(self) -> int:
        """Retries by hand the record shows."""
        return len(self.retried_before) + self.retried_since

    def overall(self, attempt: int) -> int:
        """The overall number of attempt `attempt` of the current run."""
        return self.offset + attempt


def attempts(job: Job) -> Attempts:
    numbers: list[int] = []
    retried_before: list[int] = []
    offset = previous = 0
    for i, error in enumerate(job.errors):
        attempt = int(error.get("attempt") or 0)
        if numbers and attempt <= previous:  # the counter restarted: retried by hand
            offset += previous
            retried_before.append(i)
        numbers.append(offset + attempt)
        previous = attempt
    since = bool(job.errors) and _current_run_is_new(job, previous)
    return Attempts(tuple(numbers), tuple(retried_before), since,
                    offset + previous if since else offset)


def _current_run_is_new(job: Job, last_error_attempt: int) -> bool:
    """Whether the job was retried by hand after its last recorded error."""
    if job.state is JobState.FAILED:
        return False  # the last error is the one that failed the current run
    if job.state in (JobState.ACTIVE, JobState.COMPLETED):
        return last_error_attempt >= job.attempt  # the running/last attempt had no error
    return last_error_attempt > job.attempt  # waiting, delayed, cancelled: none started


def timeline(job: Job, now: int) -> list[Step]:
    steps = [Step(job.created_at, "waiting", f"Enqueued on queue {job.queue}",
                  f"priority {job.priority}" if job.priority else "")]
    if job.scheduled_at > job.created_at + 1000 and not job.errors:
        steps.append(Step(job.scheduled_at, "delayed",
                          "Due" if job.scheduled_at <= now else "Will be due",
                          f"delayed by {duration(job.scheduled_at - job.created_at)}"))
    counted = attempts(job)
    steps += _error_steps(job, counted)
    if job.started_at is not None:
        steps.append(Step(job.started_at, "active",
                          f"Attempt {counted.overall(job.attempt)} started",
                          f"on worker {job.worker}" if job.worker else ""))
    if job.state in (JobState.WAITING, JobState.DELAYED) and job.errors:
        steps.append(Step(job.scheduled_at, job.state.value,
                          "Retry due" if job.scheduled_at > now else "Waiting for a worker",
                          f"attempt {counted.overall(job.attempt + 1)} "
                          f"({job.attempt + 1} of {job.max_attempts} in this run)"))
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


def _error_steps(job: Job, counted: Attempts) -> list[Step]:
    """A step per failed attempt, and one per retry by hand (its time is not recorded:
    it shows right after the failure it followed)."""
    steps: list[Step] = []
    for i, (error, number) in enumerate(zip(job.errors, counted.numbers, strict=True)):
        if i in counted.retried_before:
            steps.append(_retried_by_hand(job.errors[i - 1].get("at"), counted.numbers[i - 1]))
        stalled = error.get("type") == "Stalled"
        steps.append(Step(error.get("at"), "stalled" if stalled else "failed",
                          f"Attempt {number} " + ("stalled" if stalled else "failed"),
                          error_line(error)))
    if counted.retried_since:
        steps.append(_retried_by_hand(job.errors[-1].get("at"), counted.numbers[-1]))
    return steps


def _retried_by_hand(after: int | None, attempt: int) -> Step:
    return Step(None if after is None else after + 1, "waiting", "Retried by hand",
                f"after attempt {attempt}: a fresh set of attempts")
