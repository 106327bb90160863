"""``/v1/schedules``: read with any token, change with the admin scope.

    GET    /v1/schedules                  every schedule (name, task, expression, tz,
                                          next run, last run and its outcome, counters)
    GET    /v1/schedules/{name}
    POST   /v1/schedules                  create (201; 409 if the name is taken)
    PATCH  /v1/schedules/{name}           change timing, arguments or options
    POST   /v1/schedules/{name}/pause     stop firing (ticks while paused are not made up)
    POST   /v1/schedules/{name}/resume
    POST   /v1/schedules/{name}/trigger   a run now (202, Location: the job)
    DELETE /v1/schedules/{name}           204

Errors are problems: an unknown schedule 404, a taken name or a change that kept losing
a race 409, a bad expression, time zone, option or argument 422.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from ..errors import ConveyorError, ScheduleConflictError, ScheduleNotFoundError
from ..http.deps import admin_access, conveyor_of, read_access
from ..http.problems import ProblemError, conveyor_problem, responses
from .api import Schedules

T = TypeVar("T")
READ = [Depends(read_access)]
ADMIN = [Depends(admin_access)]
Name = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")]
router = APIRouter(prefix="/schedules", tags=["schedules"], responses=responses(401, 503))
Duration = str | float | None


class ScheduleChange(BaseModel):
    """What a schedule may be changed to; fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")
    task: str | None = None
    cron: str | None = Field(None, description="5 fields, 6 with seconds first, or @daily...")
    every: Duration = Field(None, description="an interval: seconds or '30s', '15m', '1h'")
    tz: str | None = Field(None, description="IANA time zone of a cron expression")
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None
    start: str | None = Field(None, description="RFC 3339 date-time")
    end: str | None = Field(None, description="RFC 3339 date-time")
    misfire: str | None = Field(None, description="skip | once | all")
    catch_up: int | None = None
    misfire_grace: Duration = None
    overlap: str | None = Field(None, description="allow | skip | queue")
    jitter: Duration = None
    expires: Duration = None
    paused: bool | None = None


class NewSchedule(ScheduleChange):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")
    task: str  # required here


async def _answer(request: Request, call: Callable[[Schedules], Awaitable[T]]) -> T:
    try:
        return await call(conveyor_of(request).schedules)
    except ScheduleNotFoundError as exc:
        raise ProblemError(404, "schedule-not-found", "Schedule not found", str(exc)) from None
    except ScheduleConflictError as exc:
        raise ProblemError(409, "schedule-conflict", "Schedule conflict", str(exc)) from None
    except ConveyorError as exc:
        raise conveyor_problem(exc) from None


def _given(change: ScheduleChange) -> dict[str, Any]:
    return change.model_dump(exclude_unset=True)


@router.get("", dependencies=READ, responses=responses(503))
async def list_schedules(request: Request) -> list[dict[str, Any]]:
    return [s.to_json() for s in await _answer(request, lambda s: s.alist())]


@router.get("/{name}", dependencies=READ, responses=responses(404))
async def get_schedule(request: Request, name: Name) -> dict[str, Any]:
    return (await _answer(request, lambda s: s.aget(name))).to_json()


@router.post("", dependencies=ADMIN, status_code=201, responses=responses(403, 404, 409, 422))
async def create_schedule(request: Request, body: NewSchedule) -> dict[str, Any]:
    options = _given(body)
    name, task = options.pop("name"), options.pop("task")
    options.setdefault("args", ())
    created = await _answer(request, lambda s: s.acreate(name, task, **options))
    return created.to_json()


@router.patch("/{name}", dependencies=ADMIN, responses=responses(403, 404, 409, 422))
async def update_schedule(request: Request, name: Name, body: ScheduleChange
                          ) -> dict[str, Any]:
    changes = _given(body)
    return (await _answer(request, lambda s: s.aupdate(name, **changes))).to_json()


@router.post("/{name}/pause", dependencies=ADMIN, responses=responses(403, 404, 409))
async def pause_schedule(request: Request, name: Name) -> dict[str, Any]:
    return (await _answer(request, lambda s: s.apause(name))).to_json()


@router.post("/{name}/resume", dependencies=ADMIN, responses=responses(403, 404, 409))
async def resume_schedule(request: Request, name: Name) -> dict[str, Any]:
    return (await _answer(request, lambda s: s.aresume(name))).to_json()


@router.post("/{name}/trigger", dependencies=ADMIN, status_code=202,
             responses=responses(403, 404, 409))
async def trigger_schedule(request: Request, name: Name) -> Response:
    handle = await _answer(request, lambda s: s.atrigger(name))
    location = f"/v1/jobs/{handle.id}"
    return JSONResponse({"id": handle.id, "state": handle.job.state.value,
                         "schedule": name}, status_code=202, headers={"Location": location})


@router.delete("/{name}", dependencies=ADMIN, status_code=204,
               responses=responses(403, 404))
async def delete_schedule(request: Request, name: Name) -> Response:
    await _answer(request, lambda s: s.adelete(name))
    return Response(status_code=204)
