"""The webhook routes: every delivery of a job's announcements, and the URLs disabled by a
410 answer. Deliveries are jobs (see conveyor.webhooks), so replaying one is
``POST /v1/jobs/{delivery id}/retry`` and enabling a gone URL again is
``DELETE /v1/jobs/{marker id}``.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from ..jobs import Job, JobState
from ..webhooks import delivery_outcome, gone_markers, list_deliveries, webhooks_of
from . import models as m
from .deps import backend_of, conveyor_of, read_access
from .problems import responses

router = APIRouter(tags=["webhooks"], dependencies=[Depends(read_access)],
                   responses=responses(401, 503))


class DeliveryAttempt(BaseModel):
    attempt: int
    type: str = Field(description="What went wrong, e.g. conveyor.webhooks."
                                  "WebhookDeliveryError.")
    message: str


class Delivery(BaseModel):
    id: str = Field(description="The delivery job's id (retry it to replay the delivery).")
    url: str
    type: str = Field(description="The announcement: job.completed, job.failed or "
                                  "job.cancelled.", examples=["job.completed"])
    message_id: str = Field(description="The webhook-id header (the receiver's "
                                        "idempotency key); the same for every attempt.")
    event_id: int = Field(description="The event of the job this delivery announces.")
    state: JobState = Field(description="completed = delivered; failed = gave up.")
    outcome: str | None = Field(description="delivered, retrying, failed, gone (410) or "
                                            "refused (SSRF); null before the first try.")
    attempt: int
    max_attempts: int
    status_code: int | None = Field(description="The receiver's answer, once delivered.")
    errors: list[DeliveryAttempt] = Field(description="One entry per failed attempt.")
    created_at: dt.datetime
    next_attempt_at: dt.datetime | None = Field(description="When the next try is due.")
    finished_at: dt.datetime | None


class Deliveries(BaseModel):
    job_id: str
    enabled: bool = Field(description="Whether this app sends webhooks at all.")
    deliveries: list[Delivery] = Field(description="Newest first.")


class GoneEndpoint(BaseModel):
    url: str
    since: dt.datetime
    marker_id: str = Field(description="Remove this job to enable the URL again.")


def _delivery(job: Job) -> dict[str, Any]:
    payload = job.kwargs.get("payload") or {}
    result = job.result if isinstance(job.result, dict) else {}
    return {
        "id": job.id, "url": job.kwargs.get("url"), "type": payload.get("type"),
        "message_id": job.kwargs.get("message_id"), "event_id": job.kwargs.get("event_id"),
        "state": job.state.value, "outcome": delivery_outcome(job), "attempt": job.attempt,
        "max_attempts": job.max_attempts, "status_code": result.get("status"),
        "errors": [{"attempt": e.get("attempt", 0), "type": str(e.get("type", "")),
                    "message": str(e.get("message", ""))} for e in job.errors],
        "created_at": m.iso(job.created_at),
        "next_attempt_at": m.iso(job.scheduled_at) if job.state in (
            JobState.WAITING, JobState.DELAYED) else None,
        "finished_at": m.iso(job.finished_at),
    }


@router.get("/jobs/{job_id}/webhooks", response_model=Deliveries,
            summary="Webhook deliveries announcing a job, with every attempt's error",
            responses=responses(404, 410, 422))
async def job_webhooks(request: Request,
                       job_id: Annotated[str, Path(max_length=200)]) -> Response:
    conveyor = conveyor_of(request)
    await conveyor.aget_job(job_id)  # 404 / 410 for unknown or removed jobs
    backend = await backend_of(request)
    jobs = await list_deliveries(backend, job_id)
    return m.json_response({"job_id": job_id, "enabled": webhooks_of(conveyor) is not None,
                            "deliveries": [_delivery(j) for j in jobs]})


@router.get("/webhooks/gone", response_model=list[GoneEndpoint],
            summary="Webhook URLs disabled because they answered 410 Gone")
async def gone(request: Request) -> Response:
    markers = await gone_markers(await backend_of(request))
    return m.json_response([{"url": url, "since": m.iso(job.created_at), "marker_id": job.id}
                            for url, job in sorted(markers.items())])
