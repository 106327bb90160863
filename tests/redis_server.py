"""Real redis-server processes for tests: free loopback ports, temp dirs, always cleaned up.

    server = RedisServer(tmp_path, appendonly=True).start()
    server.url            # redis://127.0.0.1:<port>/0
    server.kill()         # kill -9
    server.start()        # again, same port and dir (AOF replayed if it was on)
    server.stop()

    server.pause()        # SIGSTOP: connections stay open, nothing answers
    server.resume()       # SIGCONT

Fixtures: `redis_server` (one per session, shared: tests isolate themselves with a key
prefix) and `fresh_redis` (one per test, for fault tests that kill it). A `RedisCluster`
of three masters is built with ``redis-cli --cluster create``. A `FaultProxy` sits between
clients and a server to lose one reply on purpose: the command ran, the client never hears.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too; both must be < 65536."""
    for _ in range(200):
        port = random.randrange(20000, 55000)
        if _is_free(port) and _is_free(port + 10000):
            return port
    raise RuntimeError("no free port pair for a redis cluster node")


def _command(port: int, *args: str, timeout: float = 1.0) -> bytes:
    """Send one inline command, return the reply's first line or bulk string body."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s, \
            s.makefile("rb") as reply:
        s.sendall((" ".join(args) + "\r\n").encode())
        line = reply.readline()
        if line.startswith(b"$"):
            size = int(line[1:-2])
            return reply.read(size) if size >= 0 else b""
        return line


class RedisServer:
    def __init__(self, folder: Path, *, port: int | None = None, appendonly: bool = False,
                 appendfsync: str = "always", cluster: bool = False,
                 extra: tuple[str, ...] = ()) -> None:
        if REDIS_SERVER is None:
            pytest.skip("redis-server is not installed")
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or (free_cluster_port() if cluster else free_port())
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.cluster = cluster
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        assert REDIS_SERVER is not None
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.folder), "--save", "",
                "--appendonly", "yes" if self.appendonly else "no",
                "--appendfsync", self.appendfsync, "--logfile", "redis.log", "--daemonize", "no",
                *self.extra]
        if self.cluster:
            args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                     "--cluster-node-timeout", "2000"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                log = (self.folder / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}:\n{log}")
            with contextlib.suppress(OSError):
                if _command(self.port, "PING").startswith(b"+PONG"):
                    return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server on port {self.port} did not answer PING")
            time.sleep(0.02)

    def kill(self) -> None:
        """kill -9: no shutdown save, no goodbye to clients."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def pause(self) -> None:
        """SIGSTOP: the process freezes; the kernel still accepts connections and data."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        self.kill()  # SIGKILL ends a stopped process too

    def command(self, *args: str, timeout: float = 5.0) -> bytes:
        """One inline command on a connection of its own (no redis-py involved)."""
        return _command(self.port, *args, timeout=timeout)

    def cli(self, *args: str) -> str:
        assert REDIS_CLI is not None
        return subprocess.run([REDIS_CLI, "-p", str(self.port), *args], check=True,
                              capture_output=True, text=True, timeout=30).stdout


class FaultProxy:
    """A TCP proxy in front of a redis-server that can lose one reply on purpose.

    `lose_reply_to(marker, times)`: the next `times` requests containing `marker` reach
    redis and run, then each one's reply is dropped and both sides of its connection are
    closed, as when a connection dies between a command's execution and its reply.
    `delay(marker, seconds)`: the next request containing `marker` (and whatever follows
    it on its connection) reaches redis `seconds` late, as on a congested link. Every
    other byte is passed through unchanged. `lost` counts the replies lost so far.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._marker: bytes | None = None
        self._times = 0
        self._slow: tuple[bytes, float] | None = None
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._closed = False
        self.lost = 0
        threading.Thread(target=self._accept, name="fault-proxy", daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def lose_reply_to(self, marker: bytes, times: int = 1) -> None:
        with self._lock:
            self._marker, self._times = marker, times

    def delay(self, marker: bytes, seconds: float) -> None:
        with self._lock:
            self._slow = (marker, seconds)

    def close(self) -> None:
        self._closed = True
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for s in [self._listener, *sockets]:
            with contextlib.suppress(OSError):
                s.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
                server = socket.create_connection(("127.0.0.1", self.upstream), timeout=5)
            except OSError:
                if self._closed:
                    return
                continue
            server.settimeout(None)
            with self._lock:
                self._sockets += [client, server]
            doomed = threading.Event()  # set: the reply now coming back must be lost
            threading.Thread(target=self._requests, args=(client, server, doomed),
                             daemon=True).start()
            threading.Thread(target=self._replies, args=(server, client, doomed),
                             daemon=True).start()

    def _requests(self, client: socket.socket, server: socket.socket,
                  doomed: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                wait = 0.0
                with self._lock:
                    if self._times > 0 and self._marker is not None and self._marker in data:
                        self._times -= 1
                        doomed.set()
                    if self._slow is not None and self._slow[0] in data:
                        wait, self._slow = self._slow[1], None
                time.sleep(wait)
                server.sendall(data)
        with contextlib.suppress(OSError):
            server.shutdown(socket.SHUT_WR)

    def _replies(self, server: socket.socket, client: socket.socket,
                 doomed: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while data := server.recv(65536):
                if doomed.is_set():  # the command ran; its caller never learns the outcome
                    self.lost += 1
                    break
                client.sendall(data)
        for s in (client, server):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()


class RedisCluster:
    """Three masters on loopback, slots split by redis-cli."""

    def __init__(self, folder: Path) -> None:
        self.nodes = [RedisServer(folder / f"node{i}", cluster=True) for i in range(3)]

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def start(self) -> RedisCluster:
        assert REDIS_CLI is not None
        for node in self.nodes:
            node.start()
        subprocess.run([REDIS_CLI, "--cluster", "create",
                        *(f"127.0.0.1:{n.port}" for n in self.nodes),
                        "--cluster-replicas", "0", "--cluster-yes"],
                       check=True, capture_output=True, timeout=60)
        deadline = time.monotonic() + 20
        while not all(b"cluster_state:ok" in _command(n.port, "CLUSTER", "INFO")
                      for n in self.nodes):
            if time.monotonic() > deadline:
                raise RuntimeError("the redis cluster did not reach cluster_state:ok")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class Reachable(Protocol):
    """Anything a client can connect to: a server, a cluster, a FaultProxy in front of one."""

    @property
    def url(self) -> str: ...


def unique_url(server: Reachable, **params: str) -> str:
    """A URL with a key prefix of its own: an empty store on a shared server."""
    query = "&".join(f"{k}={v}" for k, v in {"prefix": f"t{uuid.uuid4().hex[:10]}",
                                                **params}.items())
    return f"{server.url}?{query}"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with tempfile.TemporaryDirectory(prefix="conveyor-redis-") as folder:
        server = RedisServer(Path(folder)).start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def fresh_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", appendonly=True).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    if REDIS_CLI is None:
        pytest.skip("redis-cli is not installed")
    with tempfile.TemporaryDirectory(prefix="conveyor-cluster-") as folder:
        cluster = RedisCluster(Path(folder))
        try:
            yield cluster.start()
        finally:
            cluster.stop()
