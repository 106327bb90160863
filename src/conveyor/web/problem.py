"""The RFC 9457 problem+json answer, as the HTTP API and the dashboard's guard write it
(the error tree's mapping onto statuses lives in conveyor.http.problems)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi.responses import JSONResponse

MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:conveyor:problem:"


def problem_response(status: int, slug: str, title: str, detail: str, *,
                     errors: list[dict[str, Any]] | None = None,
                     headers: Mapping[str, str] | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"type": TYPE_PREFIX + slug, "title": title, "status": status,
                            "detail": detail}
    if errors is not None:
        body["errors"] = [_field_problem(e) for e in errors]
    body.update(extra)
    return JSONResponse(body, status_code=status, headers=dict(headers) if headers else None,
                        media_type=MEDIA_TYPE)


def _field_problem(error: dict[str, Any]) -> dict[str, Any]:
    loc = [part if isinstance(part, int) else str(part) for part in error.get("loc", ())]
    return {"loc": loc, "msg": str(error.get("msg", "")), "type": str(error.get("type", "invalid"))}
