"""Running the HTTP app on uvicorn: `conveyor serve` (one or more processes) and the API
that `conveyor dev` starts beside its worker.

Open SSE streams would hold up a graceful shutdown (uvicorn waits for every response to
end), so a stopping server first ends them through the event hubs; clients reconnect
elsewhere with Last-Event-ID.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import secrets
import signal
import socket
import sys
import threading
from collections.abc import Iterator, MutableMapping
from types import FrameType
from typing import Any

import uvicorn

from ..app import Conveyor
from ..errors import ConfigurationError
from ..loading import app_from_env as load_app_from_env
from ..logs import configure_from_env
from ..web import hub
from ..web.settings import HttpSettings
from .app import create_app
from .protocol import BoundedHttpToolsProtocol

FACTORY = "conveyor.http.serve:app_from_env"
GRACE_SECONDS = 10


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(settings: HttpSettings, host: str) -> str | None:
    """Refuse open mode off loopback; a warning to print, if any."""
    if settings.open and not is_loopback(host):
        raise ConfigurationError(f"open mode (CONVEYOR_OPEN, no auth) only binds to loopback, "
                                 f"not {host}: use --host 127.0.0.1 or set CONVEYOR_TOKENS")
    if settings.open:
        return f"open mode: no authentication, bound to {host} only"
    notes = []
    if not settings.tokens:
        notes.append("no CONVEYOR_TOKENS set: every request except /healthz will get 401")
    if settings.plaintext_users:
        notes.append(f"CONVEYOR_USERS gives the password of {', '.join(settings.plaintext_users)}"
                     " in plaintext: store `conveyor hash-password` hashes instead")
    return "; ".join(notes) or None


def share_secret_key(workers: int, environ: MutableMapping[str, str]) -> str | None:
    """One session-signing key for every server process: with several and no
    CONVEYOR_SECRET_KEY, make one for this run and hand it to them through the
    environment (each would otherwise make its own, and a session signed by one process
    would be refused by the others). What to tell the operator, if anything."""
    if workers < 2 or environ.get("CONVEYOR_SECRET_KEY"):
        return None
    environ["CONVEYOR_SECRET_KEY"] = secrets.token_urlsafe(32)
    return (f"CONVEYOR_SECRET_KEY is not set: the {workers} server processes share a key "
            "made for this run, so a restart signs everyone out of the dashboard (set "
            "CONVEYOR_SECRET_KEY to keep sessions across restarts)")


def app_from_env() -> Any:
    """The uvicorn factory: CONVEYOR_APP's app, CONVEYOR_URL's backend, CONVEYOR_* settings."""
    configure_from_env()  # a server process spawned by uvicorn logs like `conveyor serve`
    conveyor = load_app_from_env()
    _end_streams_on_signals()
    return create_app(conveyor)


def _end_streams_on_signals() -> None:
    """Chain to uvicorn's own SIGINT/SIGTERM handlers: end open streams, then stop."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(sig)
        if not callable(previous):
            continue

        def chained(signum: int, frame: FrameType | None, previous: Any = previous) -> None:
            hub.shutdown_all()
            previous(signum, frame)

        signal.signal(sig, chained)


def run(host: str, port: int, workers: int = 1, *, log_level: str = "info",
        access_log: bool = False, loop: str = "auto") -> None:
    """Serve CONVEYOR_APP until SIGINT/SIGTERM (the caller set the environment)."""
    # uvicorn re-raises the signal that stopped it once it has shut down gracefully;
    # a SIGTERM'd server that finished cleanly exits 0, like the worker
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    shared = share_secret_key(workers, os.environ)
    if shared:
        print(f"conveyor serve: {shared}", file=sys.stderr, flush=True)
    uvicorn.run(FACTORY, factory=True, host=host, port=port, workers=workers,
                log_level=log_level, access_log=access_log, lifespan="on", log_config=None,
                loop=loop, timeout_graceful_shutdown=GRACE_SECONDS, http=BoundedHttpToolsProtocol)


class _InnerServer(uvicorn.Server):
    """A server that leaves signals to its host program (the dev worker owns them)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, bound now so that a busy port is known before anything runs."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


async def serve_beside(conveyor: Conveyor, sock: socket.socket,
                       settings: HttpSettings) -> None:
    """Serve the API on the running loop until cancelled, then stop gracefully."""
    config = uvicorn.Config(create_app(conveyor, settings), log_level="warning",
                            access_log=False, lifespan="on", http=BoundedHttpToolsProtocol,
                            timeout_graceful_shutdown=GRACE_SECONDS)
    server = _InnerServer(config)
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        hub.shutdown_all()
        server.should_exit = True
        await task
        raise
