"""Same-machine wake-ups for the SQLite backend, so idle workers neither poll nor lag.

Every waiting worker binds a Unix datagram socket in a folder named after the database
file; after a commit that makes work available, the writer sends one tiny datagram (the
queue name) to each socket there. A socket nobody listens on any more is removed by the
first writer that gets "connection refused". Workers still re-check on a slow timer, so a
lost datagram costs latency, never a job.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import tempfile
import uuid
from collections.abc import Iterable


def wake_dir(db_path: str) -> str:
    # Unix socket paths are limited to ~108 bytes, so the folder lives under the temp dir
    # with a short name derived from the database's real path.
    digest = hashlib.sha1(os.path.realpath(db_path).encode()).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), f"conveyor-{os.getuid()}", digest)


class Notifier:
    """Sends wake-ups to every listener of one database."""

    def __init__(self, db_path: str) -> None:
        self.folder = wake_dir(db_path)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._seen_mtime = -1
        self._targets: list[str] = []

    def notify(self, queues: Iterable[str] = ()) -> None:
        try:
            mtime = os.stat(self.folder).st_mtime_ns
        except FileNotFoundError:
            return
        if mtime != self._seen_mtime:
            self._seen_mtime = mtime
            self._targets = [os.path.join(self.folder, name) for name in os.listdir(self.folder)
                             if name.endswith(".sock")]
        payloads = [q.encode()[:200] for q in set(queues)] or [b""]
        for target in self._targets:
            for payload in payloads:
                try:
                    self._sock.sendto(payload, target)
                except (ConnectionRefusedError, FileNotFoundError):
                    with contextlib.suppress(OSError):
                        os.unlink(target)
                    break
                except (BlockingIOError, OSError):
                    break  # its buffer is full: it has wake-ups pending already

    def close(self) -> None:
        self._sock.close()


class Listener:
    """One worker's socket; `wait` returns on a wake-up for its queues or on timeout."""

    def __init__(self, db_path: str, queues: Iterable[str]) -> None:
        self.folder = wake_dir(db_path)
        os.makedirs(self.folder, mode=0o700, exist_ok=True)
        self.path = os.path.join(self.folder, f"{uuid.uuid4().hex[:12]}.sock")
        self._queues = {q.encode()[:200] for q in queues}
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(self.path)
        self._sock.setblocking(False)
        self._event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _drain(self) -> None:
        woken = False
        while True:
            try:
                payload = self._sock.recv(256)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            if not payload or payload in self._queues:
                woken = True
        if woken and self._event is not None:
            self._event.set()

    async def wait(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # first wait, or the backend moved to another loop
            self._detach()
            self._loop = loop
            self._event = asyncio.Event()
            loop.add_reader(self._sock.fileno(), self._drain)
        assert self._event is not None
        if not self._event.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._event.wait()
        self._event.clear()

    def _detach(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._sock.fileno())
        self._loop = None

    def close(self) -> None:
        self._detach()
        self._sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
