"""GET /metrics: the app's Prometheus metrics (see conveyor.metrics) in the text format.

It needs a token like every route but /healthz (the `read` scope is enough): point
Prometheus at it with ``authorization: {type: Bearer, credentials_file: ...}`` holding a
read token. The app's `Metrics` plugin (installed by `create_app` when the app has none)
counts from the server's start-up (`start_up`, run by the app's lifespan; an app mounted
in another whose lifespan does not run it counts from the first scrape).

Counters live in the serving process, so scrape one process per address: with
``conveyor serve --workers N`` each scrape may land on another process, whose counts
started at another moment (they would read as resets). Scrape a replica that runs one
process (or give each process its own port); several replicas are fine: one of them
reports the queue-wide series (see conveyor.metrics), so `sum` over replicas is right.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ..app import Conveyor
from ..metrics import Metrics
from .deps import conveyor_of, read_access
from .problems import responses

router = APIRouter(tags=["operations"])
log = logging.getLogger("conveyor.http")
START_UP_TIMEOUT = 5.0


async def start_up(conveyor: Conveyor) -> None:
    """Start counting now (see `Metrics.start_up`). A backend that does not answer yet
    never holds up the server: counting then starts at the first scrape."""
    found = conveyor.plugin(Metrics.name)
    if not isinstance(found, Metrics):
        return
    try:
        async with asyncio.timeout(START_UP_TIMEOUT):
            await found.start_up()
    except Exception as exc:  # the backend is down or slow: the first scrape retries
        log.warning("metrics: counting starts at the first scrape (%s)",
                    exc or type(exc).__name__)


def metrics_of(request: Request) -> Metrics:
    found = conveyor_of(request).plugin(Metrics.name)
    assert isinstance(found, Metrics), "create_app installs the metrics plugin"
    return found


@router.get("/metrics", dependencies=[Depends(read_access)], response_class=Response,
            summary="Prometheus metrics (text exposition format)",
            responses={**responses(401, 503),
                       200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
                             "description": "Queue depths, oldest waiting age, workers, "
                                            "finished jobs, run and wait times, webhook "
                                            "deliveries."}})
async def metrics(request: Request) -> Response:
    return Response(await metrics_of(request).render(), media_type=CONTENT_TYPE_LATEST)
