"""Who may see and do what: the login gate for pages, the CSRF and role checks for every
action, and the login/logout screens.

Pages need a signed-in principal (any scope) and send anonymous visitors to the login
page. Every POST must carry the session's CSRF token in its form and, when the browser
says where it comes from (Origin), come from this very host; actions also need the admin
scope. A read-only principal never sees an action control, and the server refuses its
action requests anyway.
"""

from __future__ import annotations

import hmac
import math
from urllib.parse import quote, urlsplit

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ..web import auth
from ..web.auth import Principal
from .session import login_for_token, login_for_user, principal, session_of
from .views import base_path, dashboard_of, render


class LoginRequired(Exception):
    """An anonymous visitor asked for a page: send them to the login page."""


class Refused(Exception):
    """An action request that must not run (403), with the reason shown to the person."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def viewer(request: Request) -> Principal:
    """The signed-in principal, or LoginRequired."""
    who = principal(dashboard_of(request).settings, session_of(request))
    if who is None:
        raise LoginRequired()
    return who


def current(request: Request) -> Principal | None:
    return principal(dashboard_of(request).settings, session_of(request))


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:
        return True  # older browsers and non-browser clients send none; the token decides
    hosts = {request.headers.get("host", ""), request.headers.get("x-forwarded-host", "")}
    return urlsplit(origin).netloc in hosts - {""}


async def checked_form(request: Request) -> FormData:
    """The form of a POST that passed the origin and CSRF checks (else Refused)."""
    if not _same_origin(request):
        raise Refused("This request came from another site, so it was refused.")
    form = await request.form()
    sent = form.get("csrf")
    expected = session_of(request).csrf
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise Refused("This form expired or did not come from this dashboard (CSRF check "
                      "failed). Reload the page and try again.")
    return form


async def admin_form(request: Request) -> tuple[Principal, FormData]:
    """An action's form, from an admin who sent a valid CSRF token (else Refused)."""
    form = await checked_form(request)
    who = current(request)
    if who is None:
        raise Refused("Sign in first: actions need an admin login.")
    if not who.is_admin:
        raise Refused(f"{who.name} has the read-only role: actions need the admin role.")
    return who, form


def login_redirect(request: Request) -> RedirectResponse:
    base = base_path(request)
    here = request.url.path[len(base):] if request.url.path.startswith(base) else "/"
    if request.url.query:
        here += "?" + request.url.query
    return RedirectResponse(f"{base}/login?next={quote(here, safe='')}", status_code=303)


def _safe_next(raw: object) -> str:
    """Only a path inside the dashboard: never another host (no open redirect)."""
    text = raw if isinstance(raw, str) else ""
    if not text.startswith("/") or text.startswith("//") or "\\" in text:
        return "/"
    return text


# -- the login screen -----------------------------------------------------------------------
async def login_page(request: Request) -> Response:
    dash = dashboard_of(request)
    if dash.settings.open or current(request) is not None:
        return RedirectResponse(base_path(request) + _safe_next(request.query_params.get("next")),
                                status_code=303)
    return render(request, "login.html", next=_safe_next(request.query_params.get("next")))


async def login_submit(request: Request) -> Response:
    dash = dashboard_of(request)
    form = await checked_form(request)
    settings = dash.settings
    target = _safe_next(form.get("next"))
    token, name, password = form.get("token"), form.get("name"), form.get("password")
    by_token = isinstance(token, str) and bool(token.strip())
    who = "token" if by_token else (name if isinstance(name, str) else "")
    address = request.client.host if request.client else ""
    wait = dash.throttle.wait_seconds(who, address)
    if wait > 0:
        page = render(request, "login.html", status_code=429, next=target, name=who,
                      error=f"Too many failed sign-ins: try again in {math.ceil(wait)} s.")
        page.headers["Retry-After"] = str(math.ceil(wait))
        return page
    login = None
    if by_token and isinstance(token, str):
        if auth.from_token(settings, token.strip()) is not None:
            login = login_for_token(settings, token.strip())
    elif (isinstance(name, str) and isinstance(password, str) and name
          and auth.from_password(settings, name, password) is not None):
        login = login_for_user(settings, name)
    if login is None:
        dash.throttle.failed(who, address)
        return render(request, "login.html", status_code=401, next=target,
                      error="That login was not accepted. Check the name and password, "
                            "or the token.", name=name if isinstance(name, str) else "")
    dash.throttle.succeeded(who)
    session_of(request).start(login)
    return RedirectResponse(base_path(request) + target, status_code=303)


async def logout(request: Request) -> Response:
    await checked_form(request)
    session = session_of(request)
    if session.login is not None:  # the old cookie must not sign anyone in again
        await dashboard_of(request).revocations.revoke(session.sid, session.seconds_left())
    session.start(None)
    session_of(request).set_flash("ok", "Signed out.")
    return RedirectResponse(base_path(request) + "/login", status_code=303)


routes = [
    Route("/login", login_page, methods=["GET"], name="login"),
    Route("/login", login_submit, methods=["POST"]),
    Route("/logout", logout, methods=["POST"], name="logout"),
]
