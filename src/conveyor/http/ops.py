"""Probes for orchestrators: /healthz (the process answers; no auth) and /readyz (the
backend answers a cheap call in time; needs a token like every other route)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from .deps import backend_of, read_access
from .problems import ProblemError, responses

READY_TIMEOUT = 2.0
router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str


@router.get("/healthz", response_model=Health, summary="The process is up (no auth)")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", response_model=Health, dependencies=[Depends(read_access)],
            summary="The backend is reachable", responses=responses(401, 503))
async def readyz(request: Request) -> dict[str, str]:
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            backend = await backend_of(request)
            await backend.now()
    except Exception as exc:  # any failure to reach the backend means "not ready"
        raise ProblemError(503, "not-ready", "Not ready",
                           f"the backend did not answer: {exc or type(exc).__name__}",
                           headers={"Retry-After": "1"}) from None
    return {"status": "ready"}
