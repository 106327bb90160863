"""The example app: a report pipeline, a flaky external call, a CPU-bound job and an email
that four clicks send only once.

    conveyor dev                                   # worker + maintenance on conveyor.db
    conveyor enqueue generate_report --arg user_id=1 --arg days=90 --wait
    conveyor enqueue send_email --arg to=ana@example.com --key welcome-ana

Set CONVEYOR_EXAMPLE_SPEED (e.g. 50) to run the pipeline that many times faster.

Webhooks are on: under `conveyor dev` the example page (port 8001) receives them at
/hooks and lists what it got (signature checked) at the same address:

    curl -X POST 127.0.0.1:8000/v1/tasks/send_email/jobs -H 'Content-Type: application/json' \
      -d '{"kwargs": {"to": "ana@example.com"},
           "options": {"webhook": "http://127.0.0.1:8001/hooks"}}'
    curl 127.0.0.1:8001/hooks

They are signed with CONVEYOR_WEBHOOK_SECRETS, or without it with EXAMPLE_SECRET (one
machine only, never in production); this example lets webhooks reach private addresses
(the page on 127.0.0.1) unless CONVEYOR_WEBHOOK_ALLOW_PRIVATE=0.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random

from conveyor import Conveyor, NonRetryableError, log, progress, webhooks

app = Conveyor()
SPEED = float(os.environ.get("CONVEYOR_EXAMPLE_SPEED", "1"))


async def _external_call(name: str, low: float, high: float) -> float:
    """Stands in for an HTTP call to a slow service."""
    await asyncio.sleep(random.uniform(low, high) / SPEED)
    return random.random()


@app.task(queue="reports", attempts=3, backoff="30s,2m,10m", timeout=120, expose=True)
async def generate_report(user_id: int, days: int = 30) -> dict[str, object]:
    """Parse -> three external calls -> score -> synthesize: 5 to 35 seconds in all."""
    if days <= 0:
        raise NonRetryableError("days must be positive")
    progress({"percent": 5, "step": "parse"})
    await asyncio.sleep(random.uniform(0.5, 2) / SPEED)
    signals = []
    for percent, source in ((25, "billing"), (45, "usage"), (65, "support")):
        log(f"calling the {source} service")
        signals.append(await _external_call(source, 1, 8))
        progress({"percent": percent, "step": source})
    score = round(sum(signals) / len(signals) * 100, 1)
    progress({"percent": 85, "step": "score"})
    await asyncio.sleep(random.uniform(1, 6) / SPEED)
    progress({"percent": 100, "step": "synthesize"})
    return {"user_id": user_id, "days": days, "score": score,
            "summary": f"user {user_id}: score {score} over {days} days"}


class UpstreamError(Exception):
    """The partner API answered 503."""


@app.task(queue="default", attempts=5, expose=True,
          backoff={"type": "exponential", "base": 0.5, "cap": 10})
async def flaky_call(endpoint: str = "/partner/quote") -> dict[str, object]:
    """Fails 30 % of the time, like a real partner API; retries make it succeed."""
    await asyncio.sleep(0.05 / SPEED)
    if random.random() < 0.3:
        raise UpstreamError(f"503 from {endpoint}")
    return {"endpoint": endpoint, "quote": round(random.uniform(10, 100), 2)}


@app.task(queue="images", executor="process", timeout=60)
def render_thumbnail(seed: int, size: int = 256, rounds: int = 20) -> dict[str, object]:
    """CPU-bound work in a child process (hard timeout: the child is killed)."""
    digest = str(seed).encode()
    total = size * size * rounds // 64
    for i in range(total):
        digest = hashlib.sha256(digest).digest()
        if i % max(total // 4, 1) == 0:
            progress(round(100 * i / total))
    return {"seed": seed, "size": size, "fingerprint": digest.hex()[:16]}


@app.task(queue="emails", attempts=5, expose=True)
def send_email(to: str, subject: str = "Your report is ready") -> dict[str, str]:
    """Enqueue it with key= (e.g. the user's click id): four clicks send one email."""
    log(f"sending '{subject}' to {to}")
    return {"to": to, "subject": subject, "status": "sent"}


EXAMPLE_SECRET = "whsec_Y29udmV5b3IgZXhhbXBsZSwgb25lIG1hY2hpbmUgb25seQ=="
webhooks.enable(app, secrets=os.environ.get("CONVEYOR_WEBHOOK_SECRETS") or EXAMPLE_SECRET,
                allow_private=os.environ.get("CONVEYOR_WEBHOOK_ALLOW_PRIVATE", "1") != "0")
