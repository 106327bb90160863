"""Tasks with limits for the flow-control worker tests, run in-process and by `conveyor
worker` processes (CONVEYOR_URL points the app at the test's store).

The `pause_*` tasks raise RateLimited for tenant "a" (one per executor: async, thread,
process); `rated` and `capped` are no-ops under a global rate limit and a global cap;
`held` sleeps under a cap on its first run only (a rerun after its worker died is quick).
"""

from __future__ import annotations

import asyncio

from conveyor import Conveyor, RateLimited, current_job

app = Conveyor()

PAUSE = 60.0  # long enough that a paused key cannot start again within a test


@app.task(queue="paused", concurrency=10, concurrency_key="tenant", rate_limit="1000/s",
          rate_key="tenant")
async def pause_async(tenant: str) -> str:
    if tenant == "a":
        raise RateLimited(retry_after=PAUSE)
    return tenant


@app.task(queue="paused", concurrency=10, concurrency_key="tenant", rate_limit="1000/s",
          rate_key="tenant")
def pause_thread(tenant: str) -> str:
    if tenant == "a":
        raise RateLimited(retry_after=PAUSE)
    return tenant


@app.task(queue="paused", executor="process", concurrency=10, concurrency_key="tenant",
          rate_limit="1000/s", rate_key="tenant")
def pause_process(tenant: str) -> str:
    if tenant == "a":
        raise RateLimited(retry_after=PAUSE)
    return tenant


@app.task(queue="rated", rate_limit="20/s")
async def rated() -> None:
    return None


@app.task(queue="capped", concurrency=4)
async def capped(seconds: float) -> None:
    await asyncio.sleep(seconds)


@app.task(queue="held", concurrency=4)
async def held(seconds: float) -> None:
    if current_job().job.stalls == 0:
        await asyncio.sleep(seconds)
