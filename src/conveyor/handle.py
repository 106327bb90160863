"""A handle on one stored job: its state now, and its result once it has one."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .errors import JobCancelledError, JobFailedError, ResultTimeoutError
from .jobs import Job, JobState

if TYPE_CHECKING:
    from .app import Conveyor

R = TypeVar("R")
_FIRST_POLL = 0.005
_MAX_POLL = 0.25


class JobHandle(Generic[R]):
    def __init__(self, app: Conveyor, job: Job, created: bool = True) -> None:
        self.app = app
        self.job = job
        self.created = created  # False when an existing job with the same key was returned

    def __repr__(self) -> str:
        return f"<JobHandle {self.id} {self.job.task} {self.state}>"

    @property
    def id(self) -> str:
        return self.job.id

    @property
    def folded_into(self) -> str | None:
        """The existing job this enqueue was folded into (a dedup mode or key), else None."""
        return None if self.created else self.job.id

    @property
    def state(self) -> JobState:
        """The state at the last refresh (or enqueue)."""
        return self.job.state

    def refresh(self) -> Job:
        self.job = self.app.get_job(self.id).job
        return self.job

    async def arefresh(self) -> Job:
        self.job = (await self.app.aget_job(self.id)).job
        return self.job

    def _outcome(self) -> Any:
        job = self.job
        if job.state is JobState.COMPLETED:
            return job.result
        if job.state is JobState.FAILED:
            raise JobFailedError(job.id, job.last_error)
        raise JobCancelledError(job.id)

    def result(self, timeout: float | None = None) -> R:
        """Wait for the job to finish; its result, or JobFailedError / JobCancelledError."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = _FIRST_POLL
        while not self.refresh().is_final:
            if deadline is not None and time.monotonic() >= deadline:
                raise ResultTimeoutError(self.id, timeout or 0.0, self.job.state.value)
            time.sleep(pause if deadline is None else min(pause, max(deadline - time.monotonic(),
                                                                     0)))
            pause = min(pause * 1.5, _MAX_POLL)
        result: R = self._outcome()
        return result

    async def aresult(self, timeout: float | None = None) -> R:
        """Async twin of `result`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = _FIRST_POLL
        while not (await self.arefresh()).is_final:
            if deadline is not None and time.monotonic() >= deadline:
                raise ResultTimeoutError(self.id, timeout or 0.0, self.job.state.value)
            await asyncio.sleep(pause if deadline is None
                                else min(pause, max(deadline - time.monotonic(), 0)))
            pause = min(pause * 1.5, _MAX_POLL)
        result: R = self._outcome()
        return result

    def cancel(self) -> Job:
        self.job = self.app.cancel_job(self.id)
        return self.job
