"""The HTTP/1.1 protocol `conveyor serve` and `conveyor dev` run: uvicorn's httptools
protocol with bounded request heads.

uvicorn buffers a request's head whole before the app sees it (no limit with httptools),
so an 8 MiB header value or a thousand headers would cost memory before any auth check.
Here a head over `MAX_HEAD_BYTES` (request line and headers) or with more than
`MAX_HEADERS` headers is answered 431 and the connection closed, before the app runs.
"""

from __future__ import annotations

from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 100


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading_head = True  # between requests too: the next byte starts a head
        self._head_bytes = 0
        self._header_count = 0
        self._refused = False

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._reading_head:
            self._head_bytes += len(data)
        super().data_received(data)
        # checked after parsing: the same read may also hold the end of the head and a body
        if self._reading_head and self._head_bytes > MAX_HEAD_BYTES and not self._refused:
            self._refuse(f"the request's headers are over the limit of {MAX_HEAD_BYTES} "
                         "bytes")

    def on_message_begin(self) -> None:
        self._header_count = 0
        super().on_message_begin()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count <= MAX_HEADERS:
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._head_bytes = 0
        if self._refused:  # a pipelined request behind a refused one: never run
            return
        if self._header_count > MAX_HEADERS:
            self._refuse(f"the request has {self._header_count} headers, over the limit of "
                         f"{MAX_HEADERS}")
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._reading_head = True
        if not self._refused:
            super().on_message_complete()

    def _refuse(self, detail: str) -> None:
        """431 problem+json, then close: the rest of this connection is not read."""
        self._refused = True
        body = orjson.dumps({"type": "urn:conveyor:problem:headers-too-large",
                             "title": "Request header fields too large", "status": 431,
                             "detail": detail})
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/problem+json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body) + body)
        self.transport.close()
