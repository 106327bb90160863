"""An app with flow control for the tests of its surfaces (CLI, HTTP API, dashboard,
metrics), and `hold_one` to put a job in front of them that a limit holds back."""

from __future__ import annotations

from dataclasses import dataclass

from conveyor import Conveyor
from conveyor.backends.base import WorkerInfo
from conveyor.flow.api import store_declared

app = Conveyor()  # CONVEYOR_URL points it at the test's store

app.queue("mail", rate_limit="10/s")


@app.task(queue="llm", expose=True, rate_limit="100/m", rate_key="tenant",
          concurrency=1, concurrency_key="tenant")
async def ask(tenant: str) -> str:
    return tenant


@app.task(queue="mail", expose=True)
async def send(to: str) -> str:
    return to


LEASE_MS = 60_000


@dataclass
class Held:
    running: str  # ask("acme"), claimed: it holds acme's only slot
    blocked: str  # the second ask("acme"): concurrency full
    other: str  # ask("globex"): claimed beside it, its own slot


async def hold_one(conveyor: Conveyor) -> Held:
    """Store the limits (as a starting worker does), enqueue three asks and claim as a
    live worker of "llm" would: acme's second job stays waiting, its slot full."""
    await conveyor.aopen()
    await store_declared(conveyor)
    backend = conveyor.backend
    running = await ask.aenqueue("acme")
    blocked = await ask.aenqueue("acme")
    other = await ask.aenqueue("globex")
    await backend.heartbeat(WorkerInfo("w-flow", "test", 1, ("llm",), 10), [], LEASE_MS)
    claimed = (await backend.fetch(["llm"], 10, "w-flow", LEASE_MS)).claims
    assert sorted(c.job.id for c in claimed) == sorted([running.id, other.id])
    assert (await backend.fetch(["llm"], 10, "w-flow", LEASE_MS)).claims == []
    return Held(running.id, blocked.id, other.id)
