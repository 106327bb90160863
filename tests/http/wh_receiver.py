"""A real webhook receiver for the tests: an HTTP server on a free loopback port, in a
thread, that records every request and answers with a scripted status per path.

    with Receiver({"/flaky": [500, 500, 200], "/gone": [410]}) as rx:
        url = rx.url("/flaky")          # http://127.0.0.1:<port>/flaky
        rx.requests("/flaky")           # [Received(...), ...] in arrival order

A path's script is consumed one status per request; its last status repeats. Paths without
a script answer 200.
"""

from __future__ import annotations

import http.server
import threading
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered


class Receiver:
    def __init__(self, scripts: dict[str, list[int]] | None = None, host: str = "127.0.0.1"
                 ) -> None:
        self.scripts = {path: list(statuses) for path, statuses in (scripts or {}).items()}
        self._received: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                status = receiver._answer(self.path)
                with receiver._lock:
                    receiver._received.append(Received(
                        self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                        status))
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _answer(self, path: str) -> int:
        with self._lock:
            script = self.scripts.get(path)
            if not script:
                return 200
            return script.pop(0) if len(script) > 1 else script[0]

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def requests(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self._received if path is None or r.path == path]

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
