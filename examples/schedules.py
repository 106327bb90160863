"""Schedules: a daily digest at 09:00 Lisbon time and a cleanup every 15 minutes.

    conveyor worker examples.schedules:app     # its keeper fires the ticks
    conveyor schedules                         # name, expression, next and last run
"""

from __future__ import annotations

from conveyor import Conveyor

app = Conveyor()  # $CONVEYOR_URL, else sqlite:///conveyor.db


@app.cron("0 9 * * *", tz="Europe/Lisbon")                 # 5 fields, or @daily, or 6 with seconds
@app.task(queue="emails")
async def daily_digest() -> str:
    return "sent"


@app.task
def cleanup(days: int) -> int:
    return days


app.schedule("cleanup", cleanup, every="15m", kwargs={"days": 30},
             overlap="skip",      # allow | skip (default) | queue: while the last run is unfinished
             misfire="once",      # skip | once (default) | all: ticks missed while no scheduler ran
             expires="10m")       # a run not started 10 minutes after its tick is cancelled
