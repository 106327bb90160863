"""A worker's health endpoint (``conveyor worker --health-port P``), for liveness and
readiness probes: no web framework, a few lines of HTTP on an asyncio server.

    GET /healthz   200 while the process answers (its event loop is not stuck)
    GET /readyz    200 when it can do its work, else 503 with the reason

Both answer JSON: ``{"status": "ok"}`` or ``{"status": "unavailable", "reason": "..."}``.
A single worker is ready while it runs and its backend answers; a supervisor (``-p N``)
while all N worker processes are up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections.abc import Awaitable, Callable

from .errors import ConfigurationError

# What readiness is: None when ready, else the reason it is not.
ReadyCheck = Callable[[], Awaitable[str | None]]
HOST = "0.0.0.0"  # probes come from outside the container (the kubelet, a load balancer)
READ_LIMIT = 8192  # a probe's request is a few hundred bytes


def bind(port: int, host: str = HOST) -> socket.socket:
    """The listening socket, bound now: a busy port stops the command before it starts."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(64)
    except OSError as exc:
        sock.close()
        raise ConfigurationError(f"cannot serve health checks on {host}:{port}: {exc}") from None
    sock.setblocking(False)
    return sock


async def serve(sock: socket.socket, ready: ReadyCheck) -> None:
    """Answer probes on `sock` until cancelled."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            path = await _request_path(reader)
            status, body = await _respond(path, ready)
            writer.write(_response(status, body))
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass  # a probe that hung up or sent garbage gets nothing
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    server = await asyncio.start_server(answer, sock=sock, limit=READ_LIMIT)
    async with server:
        await server.serve_forever()


async def _request_path(reader: asyncio.StreamReader) -> str:
    line = await asyncio.wait_for(reader.readline(), 5)
    while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
        pass  # headers: nothing in them changes the answer
    parts = line.decode("latin-1").split()
    if len(parts) < 2 or parts[0] not in ("GET", "HEAD"):
        raise ValueError("not a probe")
    return parts[1].split("?", 1)[0]


async def _respond(path: str, ready: ReadyCheck) -> tuple[int, dict[str, str]]:
    if path == "/healthz":
        return 200, {"status": "ok"}
    if path == "/readyz":
        try:
            reason = await asyncio.wait_for(ready(), 5)
        except Exception as exc:  # a probe failing is an answer, not a crash
            reason = f"readiness check failed: {exc or type(exc).__name__}"
        if reason is None:
            return 200, {"status": "ok"}
        return 503, {"status": "unavailable", "reason": reason}
    return 404, {"status": "not found", "reason": "try /healthz or /readyz"}


def _response(status: int, body: dict[str, str]) -> bytes:
    payload = json.dumps(body).encode()
    phrase = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
    head = (f"HTTP/1.1 {status} {phrase}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\nCache-Control: no-store\r\n"
            "Connection: close\r\n\r\n")
    return head.encode() + payload


def serve_in_thread(sock: socket.socket, ready: ReadyCheck) -> threading.Thread:
    """Serve from a daemon thread with its own loop (for the supervisor, which has none)."""
    thread = threading.Thread(target=asyncio.run, args=(serve(sock, ready),),
                              name="conveyor-health", daemon=True)
    thread.start()
    return thread
