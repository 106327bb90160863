"""`conveyor serve` and the API inside `conveyor dev`, as real processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from conveyor import Conveyor, JobFilter
from tests.helpers import ROOT, wait_until
from tests.http.conftest import ADMIN, HTTP_APP, PYTHONPATH, ServeProcess
from tests.redis_server import RedisServer, free_port

AUTH = {"Authorization": f"Bearer {ADMIN}"}


def conveyor(*args: str, env: dict[str, str], timeout: float = 30
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "conveyor", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": PYTHONPATH, **env})


def test_open_mode_refuses_to_bind_beyond_loopback(sqlite_store: str) -> None:
    result = conveyor("serve", HTTP_APP, "--host", "0.0.0.0", "--port", str(free_port()),
                      env={"CONVEYOR_URL": sqlite_store, "CONVEYOR_OPEN": "1"})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(
        "error: open mode (CONVEYOR_OPEN, no auth) only binds to loopback")


def test_a_server_without_tokens_says_so_and_refuses_everyone(
        sqlite_store: str, serve: Callable[..., ServeProcess]) -> None:
    server = serve(sqlite_store, env={"CONVEYOR_TOKENS": ""})
    answer = httpx.post(server.base + "/v1/tasks/add/jobs", json={"kwargs": {"x": 1}},
                        headers=AUTH)
    assert answer.status_code == 401
    assert httpx.get(server.base + "/healthz").status_code == 200
    assert "no CONVEYOR_TOKENS set" in server.log.read_text()


async def test_two_server_processes_make_one_job_per_idempotency_key(
        sqlite_store: str, serve: Callable[..., ServeProcess]) -> None:
    server = serve(sqlite_store, "--workers", "2")

    async def submit(key: str, x: int) -> httpx.Response:
        # a client (and connection) each, so both server processes take requests
        async with httpx.AsyncClient(base_url=server.base, headers=AUTH) as client:
            return await client.post("/v1/tasks/add/jobs", json={"kwargs": {"x": x}},
                                     headers={"Idempotency-Key": key})

    same = await asyncio.gather(*(submit("double-click", 1) for _ in range(20)))
    assert {a.status_code for a in same} == {202}
    assert len({a.json()["id"] for a in same}) == 1
    distinct = await asyncio.gather(*(submit(f"k{i}", i) for i in range(40)))
    assert len({a.json()["id"] for a in distinct}) == 40
    reader = Conveyor(sqlite_store)
    try:
        reader.open()
        stored = reader.run_sync(reader.backend.list_jobs, JobFilter(), 1000).jobs
    finally:
        reader.close()
    assert len(stored) == 41


def test_dev_serves_the_api_open_on_loopback_and_stops_cleanly(sqlite_store: str,
                                                               tmp_path: Path) -> None:
    port = free_port()
    out = tmp_path / "dev.out"
    with open(out, "w") as sink:
        dev = subprocess.Popen(
            [sys.executable, "-m", "conveyor", "dev", HTTP_APP, "--api-port", str(port)],
            cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": PYTHONPATH, "CONVEYOR_URL": sqlite_store})
    try:
        base = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            try:
                return httpx.get(base + "/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return dev.poll() is not None

        wait_until(answers, what="the dev API")
        accepted = httpx.post(base + "/v1/tasks/add/jobs", json={"kwargs": {"x": 41, "y": 1}})
        assert accepted.status_code == 202  # open mode: no token
        status = httpx.get(base + accepted.headers["location"],
                           params={"wait": 20}).json()
        if status["state"] != "completed":
            status = httpx.get(base + accepted.headers["location"], params={"wait": 20}).json()
        assert status["result"] == 42  # the dev worker ran it
        dev.send_signal(signal.SIGINT)
        assert dev.wait(30) == 0
    finally:
        if dev.poll() is None:
            dev.kill()
            dev.wait()
    panel = out.read_text()
    assert f"http://127.0.0.1:{port}/docs" in panel and "open: no auth" in panel


async def test_a_backend_outage_is_a_503_problem(fresh_redis: RedisServer,
                                                 tmp_path: Path) -> None:
    from conveyor.http import create_app
    from tests.http import http_app
    from tests.http.conftest import settings

    http_app.app.use(fresh_redis.url)
    api = create_app(http_app.app, settings())
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(api), base_url="http://a",
                                     headers=AUTH) as client:
            ok = await client.post("/v1/tasks/add/jobs", json={"kwargs": {"x": 1}})
            assert ok.status_code == 202
            fresh_redis.kill()
            started = time.monotonic()
            for path in ("/v1/tasks/add/jobs", f"/v1/jobs/{ok.json()['id']}", "/readyz"):
                method = "POST" if path.endswith("/jobs") else "GET"
                answer = await client.request(method, path, json={"kwargs": {"x": 2}})
                assert answer.status_code == 503, (path, answer.text)
                assert answer.headers["content-type"] == "application/problem+json"
                assert answer.headers["retry-after"] == "1"
            assert time.monotonic() - started < 60
    finally:
        with contextlib.suppress(Exception):  # the backend is gone
            await http_app.app.aclose()
