"""FastAPI dependencies shared by the routers: who is calling, and the app they reach.

    @router.get("/thing", dependencies=[Depends(read_access)])    # any valid token
    @router.post("/thing", dependencies=[Depends(admin_access)])  # admin scope only

Failures are problems: 401 with ``WWW-Authenticate: Bearer`` for a missing or unknown
token, 403 for a read-scoped token on an admin route. In open mode (`conveyor dev`) every
caller is an anonymous admin.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..app import Conveyor
from ..backends.base import Backend
from ..web.auth import Principal, from_token
from ..web.settings import HttpSettings
from .problems import ProblemError

_bearer = HTTPBearer(auto_error=False, description="A token from CONVEYOR_TOKENS: `read` "
                     "sees everything, `admin` may also enqueue and act.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]


def _principal(request: Request, token: str | None) -> Principal:
    settings: HttpSettings = request.app.state.settings
    principal = from_token(settings, token)
    if principal is None:
        raise ProblemError(401, "unauthorized", "Unauthorized",
                           "a valid bearer token is required (Authorization: Bearer TOKEN)",
                           headers={"WWW-Authenticate": 'Bearer realm="conveyor"'})
    return principal


def admin_of(request: Request) -> Principal:
    """`admin_access` without the dependency machinery, for the enqueue hot path."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    principal = _principal(request, token.strip() if scheme.lower() == "bearer" else None)
    if not principal.is_admin:
        raise ProblemError(403, "forbidden", "Forbidden",
                           "this action needs a token with the admin scope")
    return principal


async def read_access(request: Request, credentials: Credentials) -> Principal:
    """Any valid token (read or admin)."""
    return _principal(request, credentials.credentials if credentials else None)


async def admin_access(request: Request, credentials: Credentials) -> Principal:
    """A token with the admin scope."""
    principal = _principal(request, credentials.credentials if credentials else None)
    if not principal.is_admin:
        raise ProblemError(403, "forbidden", "Forbidden",
                           "this action needs a token with the admin scope")
    return principal


def conveyor_of(request: Request) -> Conveyor:
    app: Conveyor = request.app.state.conveyor
    return app


async def backend_of(request: Request) -> Backend:
    app = conveyor_of(request)
    await app.aopen()  # once, lazily: the lifespan of a mounted app never runs
    return app.backend
