"""What stands in for auth in open mode (`conveyor dev`: no tokens, loopback only): the
checks that keep other web pages in the developer's browser out.

Without a token to check, any page the developer visits could otherwise call the API on
127.0.0.1: a cross-origin form or `fetch` (CSRF), or a page whose own name re-resolves to
127.0.0.1 (DNS rebinding). So, in open mode only:

- the Host header names this machine (localhost, 127.0.0.1, [::1]) or a host listed in
  CONVEYOR_ALLOWED_HOSTS; any other answers 403 ``foreign-host``;
- an unsafe request (POST, PUT, PATCH, DELETE) that a browser marks as coming from
  another origin (``Sec-Fetch-Site`` other than same-origin/none, or an ``Origin`` that is
  not this host) answers 403 ``cross-origin``;
- an unsafe request to the API (not the dashboard, whose forms carry a CSRF token) with a
  body must say it is JSON (415 otherwise): the bodies a page may send cross-origin
  without a preflight (forms, text/plain) are never taken.

Clients that are not browsers send neither Origin nor Sec-Fetch-Site and pass.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from .problem import problem_response

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def host_name(authority: str) -> str:
    """'127.0.0.1:8000' -> '127.0.0.1', '[::1]:8000' -> '[::1]', lower-cased."""
    authority = authority.strip().lower()
    if authority.startswith("["):
        return authority.split("]", 1)[0] + "]"
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


def is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/")
                                           and media.endswith("+json"))


def is_cross_origin(site: str | None, origin: str | None, host: str | None) -> bool:
    """The browser says the request comes from another origin than this host."""
    if site is not None and site not in ("same-origin", "none"):
        return True
    if origin is None:
        return False
    return origin == "null" or urlsplit(origin).netloc.lower() != (host or "").lower()


class OpenModeGuard:
    """ASGI middleware for an app served without auth (see the module docstring)."""

    def __init__(self, app: ASGIApp, allowed_hosts: tuple[str, ...] = (),
                 forms_under: str = "/dashboard") -> None:
        self.app = app
        self.hosts = LOOPBACK_HOSTS | {host_name(h) for h in allowed_hosts}
        self.forms_under = forms_under

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k: v.decode("latin-1") for k, v in scope["headers"]
                   if k in (b"host", b"origin", b"sec-fetch-site", b"content-type",
                            b"content-length", b"transfer-encoding")}
        refusal = self._refusal(scope, headers)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, slug, title, detail = refusal
        await problem_response(status, slug, title, detail)(scope, receive, send)

    def _refusal(self, scope: Scope, headers: dict[bytes, str]
                 ) -> tuple[int, str, str, str] | None:
        host = headers.get(b"host")
        if host is not None and host_name(host) not in self.hosts:
            return (403, "foreign-host", "Foreign host",
                    f"this server runs without auth and answers only to localhost, "
                    f"127.0.0.1 and [::1], not to {host_name(host)!r} (a page whose name "
                    "resolves here); add the name to CONVEYOR_ALLOWED_HOSTS to allow it")
        if scope.get("method", "GET") in SAFE_METHODS:
            return None
        site = headers.get(b"sec-fetch-site")
        origin = headers.get(b"origin")
        if is_cross_origin(site, origin, host):
            return (403, "cross-origin", "Cross-origin request refused",
                    "this server runs without auth, so it refuses requests that other web "
                    "pages make (Origin or Sec-Fetch-Site says this one came from "
                    f"{origin or site})")
        return self._body_refusal(scope, headers)

    def _body_refusal(self, scope: Scope, headers: dict[bytes, str]
                      ) -> tuple[int, str, str, str] | None:
        path: str = scope.get("path", "")
        root: str = scope.get("root_path", "")
        if path.startswith(root):
            path = path[len(root):]
        if path == self.forms_under or path.startswith(self.forms_under + "/"):
            return None
        kind = headers.get(b"content-type")
        has_body = headers.get(b"content-length", "0").strip() not in ("", "0") or \
            b"transfer-encoding" in headers
        if (kind is not None and not is_json(kind)) or (kind is None and has_body):
            return (415, "unsupported-media-type", "Unsupported media type",
                    "send the body as JSON (Content-Type: application/json); a server "
                    "without auth takes no other kind")
        return None
