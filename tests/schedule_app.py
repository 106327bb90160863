"""An app with schedules for the scheduler-process tests: every run appends
"<schedule> <tick> <pid>" to the ledger file named by SCHEDULE_LEDGER."""

from __future__ import annotations

import os

from conveyor import Conveyor, current_job

app = Conveyor()  # CONVEYOR_URL points it at the test's store
LEDGER = os.environ.get("SCHEDULE_LEDGER", "schedule-ledger.txt")


@app.cron("* * * * * *", name="per-second-cron", overlap="allow", kwargs={"ledger": LEDGER})
@app.task
def record_tick(ledger: str) -> None:
    meta = current_job().job.meta
    with open(ledger, "a") as f:
        f.write(f"{meta['schedule']} {meta['tick']} {os.getpid()}\n")


app.schedule("every-second", record_tick, every="1s", overlap="allow",
             kwargs={"ledger": LEDGER})
