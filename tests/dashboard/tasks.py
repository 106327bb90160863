"""Tasks for the dashboard tests: ones that succeed, fail, report progress, or fail until a
flag file exists (so a test can fix the cause, then retry from the dashboard)."""

from __future__ import annotations

import asyncio
import os

from conveyor import Conveyor, log, progress

app = Conveyor()  # CONVEYOR_URL points it at the test's store


class PaymentDeclined(Exception):
    """A failure the tests group and replay."""


@app.task(queue="default")
async def add(a: int, b: int) -> int:
    return a + b


@app.task(queue="emails", attempts=1)
async def send_email(to: str) -> dict[str, str]:
    log(f"sending to {to}")
    return {"to": to, "status": "sent"}


@app.task(queue="billing", attempts=1)
async def charge(customer: str, flag: str = "") -> str:
    """Fails with PaymentDeclined until the file `flag` exists."""
    if not flag or not os.path.exists(flag):
        raise PaymentDeclined(f"card of {customer} declined")
    return f"charged {customer}"


@app.task(queue="billing", attempts=1)
async def refund(customer: str) -> str:
    raise ValueError(f"no payment to refund for {customer}")


@app.task(queue="reports", attempts=1)
async def build_report(steps: int = 5, pause: float = 0.3) -> dict[str, int]:
    for step in range(1, steps + 1):
        log(f"step {step} of {steps}")
        progress({"percent": round(100 * step / steps), "step": f"part {step}"})
        await asyncio.sleep(pause)
    return {"pages": steps}
