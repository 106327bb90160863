"""Dashboard sessions: a signed cookie that says who signed in and carries the CSRF token.

Every visitor gets a session (signed but anonymous until login), so even the login form is
CSRF-protected. The cookie is signed with itsdangerous (keyed by CONVEYOR_SECRET_KEY, with
this purpose as its salt) and holds no secret: a session id, a user's name or a fingerprint
of the token used to sign in, re-checked against the configuration on every request, so
removing a token or changing a password ends the sessions that used it. Signing out
revokes the session id for every server process (see `revocation`). It is HttpOnly,
SameSite=Lax (cross-site POSTs never carry it) and scoped to the dashboard's own path.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..web.auth import ANONYMOUS_ADMIN, Principal
from ..web.settings import HttpSettings
from .revocation import Revocations

COOKIE = "conveyor_session"
MAX_AGE_S = 12 * 3600
_SALT = "conveyor-dashboard-session"


def _new_id() -> str:
    return secrets.token_urlsafe(16)


@dataclass
class Session:
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    login: dict[str, str] | None = None  # {"kind": "user"|"token", "id": ..., "check": ...}
    issued: int = field(default_factory=lambda: int(time.time()))
    flash: dict[str, str] | None = None  # one message for the next page, then gone
    dirty: bool = True  # the cookie must be (re)written with this response
    sid: str = field(default_factory=_new_id)  # what signing out revokes

    def set_flash(self, kind: str, text: str) -> None:
        self.flash = {"kind": kind, "text": text}
        self.dirty = True

    def pop_flash(self) -> dict[str, str] | None:
        flash, self.flash = self.flash, None
        if flash is not None:
            self.dirty = True
        return flash

    def start(self, login: dict[str, str] | None) -> None:
        """A new identity gets a new session id and CSRF token (no fixation across a login
        or logout)."""
        self.login = login
        self.sid = _new_id()
        self.csrf = secrets.token_urlsafe(24)
        self.issued = int(time.time())
        self.dirty = True

    def seconds_left(self, now: float | None = None) -> float:
        return max(self.issued + MAX_AGE_S - (time.time() if now is None else now), 0.0)


@functools.lru_cache(maxsize=8)
def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=_SALT)


def encode(secret: str, session: Session) -> str:
    return _serializer(secret).dumps({"s": session.sid, "c": session.csrf, "l": session.login,
                                      "i": session.issued, "f": session.flash})


def decode(secret: str, value: str, now: float | None = None) -> Session | None:
    """The session in a cookie value, or None if it is forged, malformed or expired."""
    try:
        data: dict[str, Any] = _serializer(secret).loads(value, max_age=MAX_AGE_S)
        session = Session(csrf=str(data["c"]), login=data.get("l"), issued=int(data["i"]),
                          flash=data.get("f"), dirty=False, sid=str(data["s"]))
    except (BadSignature, ValueError, KeyError, TypeError):
        return None
    if session.seconds_left(now) <= 0:
        return None
    return session


# -- who a session stands for ---------------------------------------------------------------
def fingerprint(settings: HttpSettings, value: str) -> str:
    """Stands for a token or password in the cookie without revealing it."""
    return hmac.new(settings.secret_key.encode(), b"fp\x00" + value.encode(),
                    hashlib.sha256).hexdigest()[:32]


def login_for_user(settings: HttpSettings, name: str) -> dict[str, str]:
    password = settings.users[name].password
    return {"kind": "user", "id": name, "check": fingerprint(settings, password)}


def login_for_token(settings: HttpSettings, token: str) -> dict[str, str]:
    return {"kind": "token", "id": fingerprint(settings, token), "check": ""}


def principal(settings: HttpSettings, session: Session) -> Principal | None:
    """Who is signed in, checked against the current configuration."""
    if settings.open:
        return ANONYMOUS_ADMIN
    login = session.login
    if not isinstance(login, dict):
        return None
    if login.get("kind") == "user":
        user = settings.users.get(login.get("id", ""))
        if user is None or not hmac.compare_digest(fingerprint(settings, user.password),
                                                   login.get("check", "")):
            return None
        return Principal(user.name, user.scope)
    if login.get("kind") == "token":
        for token, scope in settings.tokens.items():
            if hmac.compare_digest(fingerprint(settings, token), login.get("id", "")):
                return Principal(f"token {token[:4]}…", scope)
    return None


class SessionMiddleware:
    """Loads the session into ``scope["conveyor.session"]`` and writes the cookie back on
    the response when it changed (a pure ASGI middleware, so streams pass untouched)."""

    def __init__(self, app: ASGIApp, settings: HttpSettings,
                 revocations: Revocations | None = None) -> None:
        self.app = app
        self.settings = settings
        self.revocations = revocations

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        raw = conn.cookies.get(COOKIE)
        session = (decode(self.settings.secret_key, raw) if raw else None) or Session()
        if session.login is not None and self.revocations is not None \
                and await self.revocations.is_revoked(session.sid):
            session = Session()  # signed out: anonymous again
        scope["conveyor.session"] = session
        path = (scope.get("root_path") or "").rstrip("/") + "/"
        secure = conn.url.scheme == "https"

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start" and session.dirty:
                value = encode(self.settings.secret_key, session)
                cookie = (f"{COOKIE}={value}; Path={path}; Max-Age={MAX_AGE_S}; HttpOnly; "
                          "SameSite=Lax" + ("; Secure" if secure else ""))
                MutableHeaders(scope=message).append("set-cookie", cookie)
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def session_of(conn: HTTPConnection) -> Session:
    session: Session = conn.scope["conveyor.session"]
    return session
