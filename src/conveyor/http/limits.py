"""/v1/limits: the flow-control limiters stored in the backend, their use and what they
hold back (read scope), and changing one at runtime (admin scope; the next claim applies
it). conveyor/flow/api.py does the work, conveyor/flow/view.py shapes the answers.

    GET    /v1/limits                       every limiter (?queue= narrows)
    GET    /v1/limits/{name}                one (?queue= when the name is in several)
    PATCH  /v1/limits/{name}                {"rate_limit": "20/s" | "off", "concurrency": 5 | "off"}
    DELETE /v1/limits/{name}/override       back to the limit declared in code

A name that is no stored limiter answers 404 (`unknown-limiter`); a bad spec 422.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from ..flow.view import limit_data
from ..task import MAX_QUEUE_NAME
from . import models as m
from .deps import admin_access, backend_of, conveyor_of, read_access
from .problems import ProblemError, responses

router = APIRouter(tags=["limits"], responses=responses(401, 422, 503))
READ = [Depends(read_access)]
ADMIN = [Depends(admin_access)]
Name = Annotated[str, Path(min_length=1, max_length=300, description=(
    "'queue' (a queue's own limits), 'task:<task>' or a shared limiter's name."))]
InQueue = Annotated[str | None, Query(min_length=1, max_length=MAX_QUEUE_NAME,
                                      pattern=m.QUEUE_PATTERN, description=(
    "The queue the limiter lives in; needed only when the name is stored in several "
    "(every queue with its own limits has a limiter named 'queue')."))]


@router.get("/limits", response_model=list[m.LimitStatus], dependencies=READ,
            summary="Every limiter with its limits in force, use per key and blocked jobs")
async def list_limits(request: Request, queue: InQueue = None) -> Response:
    await backend_of(request)
    found = await conveyor_of(request).limits.alist()
    return m.json_response([limit_data(info) for info in found
                            if queue is None or info.queue == queue])


@router.get("/limits/{name}", response_model=m.LimitStatus, dependencies=READ,
            summary="One limiter", responses=responses(400, 404))
async def get_limit(request: Request, name: Name, queue: InQueue = None) -> Response:
    await backend_of(request)
    return m.json_response(limit_data(await conveyor_of(request).limits.aget(name, queue=queue)))


@router.patch("/limits/{name}", response_model=m.LimitStatus, dependencies=ADMIN,
              summary="Change a limiter at runtime (the next claim applies it)",
              description="The parts given change ('off' removes one); the others stay as "
                          "they are in force. The change outlives deploys until reset.",
              responses=responses(400, 403, 404))
async def change_limit(request: Request, name: Name, change: m.LimitChange,
                       queue: InQueue = None) -> Response:
    if change.rate_limit is None and change.concurrency is None:
        raise ProblemError(422, "validation", "The request did not validate",
                           "give rate_limit and/or concurrency",
                           errors=[{"loc": ["body"], "msg": "give rate_limit and/or "
                                    "concurrency", "type": "value_error"}])
    await backend_of(request)
    changed = await conveyor_of(request).limits.aset(
        name, queue=queue, rate_limit=change.rate_limit, concurrency=change.concurrency)
    return m.json_response(limit_data(changed))


@router.delete("/limits/{name}/override", response_model=m.LimitStatus, dependencies=ADMIN,
               summary="Drop a runtime change: the limit declared in code is in force again",
               responses=responses(400, 403, 404))
async def reset_limit(request: Request, name: Name, queue: InQueue = None) -> Response:
    await backend_of(request)
    reset = await conveyor_of(request).limits.areset(name, queue=queue)
    return m.json_response(limit_data(reset))
