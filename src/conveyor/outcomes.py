"""What a task may raise to steer its own job, besides returning a result.

- ``Retry(delay=...)``: run again after `delay` seconds (counts as an attempt).
- ``Cancel(reason)``: end the job `cancelled`, no retry.
- ``RateLimited(retry_after=...)``: the downstream said "too many requests": pause this
  job's limiters (or the one named) for every worker and put the job back, uncharged.
- ``NonRetryableError``: subclass it (or list types in ``@app.task(non_retryable=...)``)
  for errors that no retry can fix; the job fails at once.
"""

from __future__ import annotations


class Retry(Exception):
    """Ask for another attempt after `delay` seconds (default: the task's backoff)."""

    def __init__(self, delay: float | None = None, reason: str = "retry requested") -> None:
        super().__init__(reason)
        if delay is not None and delay < 0:
            raise ValueError("Retry delay must be >= 0")
        self.delay = delay
        self.reason = reason


class Cancel(Exception):
    """End the job as cancelled."""

    def __init__(self, reason: str = "cancelled by the task") -> None:
        super().__init__(reason)
        self.reason = reason


class NonRetryableError(Exception):
    """Base for errors that fail the job at once, whatever attempts remain."""


class RateLimited(Exception):
    """The service this task calls refused for now (an HTTP 429, say): pause the job's
    limiter keys (or only `limiter`) for `retry_after` seconds across every worker, and
    put the job back without charging an attempt. A job without limits waits delayed."""

    def __init__(self, retry_after: float, limiter: str | None = None,
                 reason: str = "rate limited by the downstream service") -> None:
        super().__init__(reason)
        if not retry_after >= 0 or retry_after == float("inf"):
            raise ValueError("RateLimited retry_after must be a finite number >= 0")
        self.retry_after = retry_after
        self.limiter = limiter
        self.reason = reason
