"""Health checks: `conveyor check` exit codes against real backends, and the worker's
`--health-port` endpoint on real worker processes (single and supervised)."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from tests.test_cli import child, ok, run, url, wait_for
from tests.test_supervisor import supervised

__all__ = ["url"]  # the fixture, used by name


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def probe(port: int, path: str) -> httpx.Response | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5)
    except httpx.TransportError:
        return None


def test_check_passes_when_the_backend_answers(url: str) -> None:
    assert ok("check").stdout == f"ok: backend {url} answers\n"


def test_check_fails_in_one_line_when_the_backend_is_unreachable(url: str) -> None:
    closed = free_port()  # nothing listens there once the probe socket is closed
    result = run("--url", f"redis://127.0.0.1:{closed}/0", "check", "--timeout", "3")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: backend redis://127.0.0.1:{closed}/0 unreachable")


@pytest.mark.slow
def test_check_worker_needs_a_worker_heartbeating_on_this_host(url: str,
                                                               tmp_path: Path) -> None:
    refused = run("check", "--worker")
    assert refused.exit_code == 1
    assert f"no worker process on host {socket.gethostname()}" in refused.stderr
    with child(tmp_path, url, "worker"):
        passed = ok("check", "--worker").stdout
    assert "ok: 1 worker process(es) on host" in passed


@pytest.mark.slow
def test_a_worker_serves_liveness_and_readiness(url: str, tmp_path: Path) -> None:
    port = free_port()
    with child(tmp_path, url, "worker", "--health-port", str(port)):
        live = probe(port, "/healthz")
        ready = probe(port, "/readyz")
        assert live is not None and (live.status_code, live.json()) == (200, {"status": "ok"})
        assert ready is not None and ready.status_code == 200
        missing = probe(port, "/nope")
        assert missing is not None and missing.status_code == 404
    assert probe(port, "/healthz") is None  # gone with the worker


@pytest.mark.slow
def test_a_supervisor_is_ready_once_all_its_worker_processes_are_up(url: str,
                                                                    tmp_path: Path) -> None:
    port = free_port()
    with supervised(tmp_path, url, "-p", "2", "--health-port", str(port)) as sup:
        sup.wait_members(2)

        def ready() -> bool:
            answer = probe(port, "/readyz")
            return answer is not None and answer.status_code == 200
        wait_for(ready, "the supervisor to be ready")
        assert sup.stop() == 0


def test_a_busy_health_port_stops_the_worker_before_it_starts(url: str) -> None:
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen(1)
        result = run("worker", "--health-port", str(busy.getsockname()[1]))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: cannot serve health checks on 0.0.0.0:")
