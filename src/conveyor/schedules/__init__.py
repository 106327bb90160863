"""Schedules: cron and interval jobs that fire exactly once per tick, however many
schedulers run.

    @app.cron("0 9 * * *", tz="Europe/Lisbon")
    @app.task
    def daily_digest() -> None: ...

    app.schedule("cleanup", cleanup, every="15m", kwargs={"days": 30})

Modules: timing (cron and intervals), spec (a checked definition), planner (what is due,
misfire), runner (the leader duty), api (``app.schedules``), declare (``app.cron``),
plugin (how it attaches), http (``/v1/schedules``), cli, dashboard, metrics.
The backend verbs are in conveyor/backends/schedules.py.
"""

from __future__ import annotations

from .api import Schedule, Schedules, SyncReport
from .plugin import SchedulesPlugin, enable
from .spec import ScheduleSpec, tick_key

__all__ = ["Schedule", "ScheduleSpec", "Schedules", "SchedulesPlugin", "SyncReport", "enable",
           "tick_key"]
