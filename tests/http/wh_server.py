"""A real uvicorn process serving an ASGI app on a free loopback port, for the tests.

    with ServerProcess(url, "tests.http.wh_serve:api", tokens="read:r,admin:a") as server:
        httpx.get(server.base + "/metrics", headers={"Authorization": "Bearer r"})
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx

from tests.helpers import ROOT
from tests.http.conftest import PYTHONPATH
from tests.redis_server import free_port


class ServerProcess:
    def __init__(self, url: str, target: str, *, tokens: str = "", open_mode: bool = False,
                 env: dict[str, str] | None = None, health: str = "/healthz") -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "CONVEYOR_URL": url, "PYTHONPATH": PYTHONPATH,
                    "CONVEYOR_TOKENS": tokens, "CONVEYOR_OPEN": "1" if open_mode else "",
                    **(env or {})}
        self.target = target
        self.health = health
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> ServerProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", self.target, "--host", "127.0.0.1", "--port",
             str(self.port), "--log-level", "warning"],
            env=self.env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited: {self.proc.communicate()[0]}")
            try:
                if httpx.get(self.base + self.health, timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.__exit__()
        raise RuntimeError("the server did not start within 30 s")

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        try:
            self.output = self.proc.communicate(timeout=15)[0]
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.output = self.proc.communicate()[0]
