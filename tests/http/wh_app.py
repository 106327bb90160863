"""The app of the webhook and metrics tests: a few tasks, webhooks on with two signing
secrets (rotation) and a fast retry schedule. CONVEYOR_URL points it at the test's
database; CONVEYOR_WEBHOOK_ALLOW_PRIVATE decides whether loopback receivers are allowed
(the tests' receivers live on 127.0.0.1)."""

from __future__ import annotations

import asyncio

from conveyor import Conveyor, NonRetryableError, progress, webhooks

NEW_SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # base64 of 24 bytes
OLD_SECRET = "whsec_" + "c2VjcmV0LW9mLXRoZS1wcmV2aW91cy15ZWFy"

app = Conveyor()
hooks = webhooks.enable(app, secrets=[NEW_SECRET, OLD_SECRET], schedule="0.05s,0.1s,0.2s",
                        timeout=5)


@app.task(queue="work", expose=True)
async def add(a: int, b: int) -> int:
    progress(50)
    await asyncio.sleep(0.01)
    return a + b


@app.task(queue="work", expose=True)
async def explode(message: str = "boom") -> None:
    raise NonRetryableError(message)


@app.task(queue="work", expose=True)
async def count(steps: int = 5, pause: float = 0.02) -> dict[str, int]:
    """Reports progress at each step (SSE has something to stream)."""
    for step in range(1, steps + 1):
        await asyncio.sleep(pause)
        progress({"percent": round(100 * step / steps), "step": step})
    return {"steps": steps}
