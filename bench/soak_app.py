"""The app of bench/soak.py: one no-op task, and retention short enough that a soak of a
few minutes shows whether what is kept reaches a plateau (production keeps events a day)."""

from __future__ import annotations

from conveyor import Conveyor, Retention

RETENTION = Retention(
    completed_max_age_ms=60_000, completed_max_count=10_000, failed_max_count=10_000,
    events_max_age_ms=60_000, tombstones_max_age_ms=60_000, tombstones_max_count=10_000)

app = Conveyor(retention=RETENTION)  # CONVEYOR_URL picks the backend


@app.task
async def noop(n: int) -> int:
    return n
