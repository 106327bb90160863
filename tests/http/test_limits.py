"""`conveyor serve` bounds what it buffers of a request before the app (and its auth)
runs: a head over 64 KiB or with more than 100 headers is answered 431 and the connection
closed, while ordinary requests on the same server go on."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable

import httpx
import pytest

from conveyor.http.protocol import MAX_HEAD_BYTES, MAX_HEADERS
from tests.http.conftest import ADMIN, ServeProcess


def exchange(port: int, head: bytes) -> bytes:
    """Send a request head (as much of it as the server takes) and read the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        # refused mid-send: the answer was written before the close
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
        return answer


@pytest.mark.slow
def test_oversized_request_heads_are_refused_before_auth(
        serve: Callable[..., ServeProcess], sqlite_store: str) -> None:
    server = serve(sqlite_store)
    huge_value = (b"GET /v1/jobs HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (8 * 1024 * 1024)
                  + b"\r\n\r\n")
    many = (b"GET /v1/jobs HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-H%d: v\r\n" % i for i in range(1000)) + b"\r\n")
    for head, why in [(huge_value, b"%d bytes" % MAX_HEAD_BYTES),
                      (many, b"limit of %d" % MAX_HEADERS)]:
        answer = exchange(server.port, head)
        status, _, rest = answer.partition(b"\r\n")
        assert status == b"HTTP/1.1 431 Request Header Fields Too Large", answer[:200]
        assert b"application/problem+json" in rest and why in rest
    # the server is fine, and a request just under the limits is served
    under = {f"X-H{i}": "v" for i in range(MAX_HEADERS - 10)}
    ok = httpx.get(server.base + "/v1/jobs", headers={
        **under, "Authorization": f"Bearer {ADMIN}", "X-Pad": "p" * 16_000}, timeout=10)
    assert ok.status_code == 200
