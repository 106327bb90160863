"""Rough edges of the command line, each pinned: flags in --help, the dev panel's advice,
a busy dev port, the Redis durability warning (once per process, never for reading), and
job ids as lists show them (a unique start or end is enough)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.redis_server import RedisServer, redis_server, unique_url
from tests.test_cli import (
    APP,
    PYTHONPATH,
    ROOT,
    as_json,
    child,
    enqueue,
    job_state,
    ok,
    run,
    url,
    wait_for,
)

__all__ = ["redis_server", "url"]  # fixtures, used by name
WARNING = "neither AOF nor RDB persistence"


def test_help_shows_flags_without_a_type(url: str) -> None:
    for args in ((), ("jobs",), ("worker",), ("purge",)):
        shown = ok(*args, "--help").stdout
        assert "--help" in shown and "<bool>" not in shown, args
    assert "--json" in ok("jobs", "--help").stdout


def test_dev_refuses_a_busy_api_port_before_starting_anything(url: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = run("dev", APP, "--api-port", str(port))
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert f"cannot serve the HTTP API on 127.0.0.1:{port}" in result.stderr
    assert "--api-port 0" in result.stderr and result.stdout == ""  # no panel: nothing ran


@pytest.mark.slow
@pytest.mark.skipif(sys.prefix == sys.base_prefix, reason="the tests run outside a venv")
def test_the_dev_panel_says_how_to_activate_the_venv(url: str, tmp_path: Path) -> None:
    with child(tmp_path, url, "dev", APP, "--api-port", "0") as dev:
        pass
    panel = dev.out.read_text()
    assert "source " in panel and "bin/activate" in panel
    assert panel.index("bin/activate") < panel.index("export CONVEYOR_APP")


# -- the durability warning ----------------------------------------------------------------
@pytest.fixture
def redis_url(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A Redis store without persistence (the session's test server), as CONVEYOR_URL."""
    address = unique_url(redis_server)
    monkeypatch.setenv("CONVEYOR_URL", address)
    monkeypatch.setenv("CONVEYOR_APP", APP)
    monkeypatch.chdir(ROOT)
    yield address


def conveyor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "conveyor", *args], cwd=ROOT, text=True,
                          capture_output=True, env={**os.environ, "PYTHONPATH": PYTHONPATH},
                          timeout=60, check=True)


@pytest.mark.slow
def test_the_durability_warning_is_for_writers_once_per_process(redis_url: str,
                                                                 tmp_path: Path) -> None:
    assert conveyor("enqueue", "add", "--arg", "x=1").stderr.count(WARNING) == 1
    for reading in (("jobs",), ("queues",), ("workers",), ("info",), ("check",)):
        assert WARNING not in conveyor(*reading).stderr, reading
    with child(tmp_path, redis_url, "worker"):
        pass
    assert (tmp_path / "child.err").read_text().count(WARNING) == 1  # not once per backend


# -- ids as lists show them ----------------------------------------------------------------
def test_commands_find_a_job_by_the_start_or_end_of_its_id(url: str) -> None:
    first = enqueue("add", "--arg", "x=1", "--delay", "1h")
    second = enqueue("add", "--arg", "x=2")
    assert as_json("job", first[-12:])["id"] == first  # the dashboard shows "…" + last 12
    assert as_json("job", "…" + second[-12:])["id"] == second
    assert as_json("job", first[:30])["id"] == first
    ok("promote", first[-12:])
    assert job_state(first) == "waiting"
    ok("cancel", second[-12:])
    assert job_state(second) == "cancelled"
    shared = next(first[:n] for n in range(len(first), -1, -1) if second.startswith(first[:n]))
    assert shared  # UUIDv7 ids start with the time: these share a minute or so
    ambiguous = run("job", shared)
    assert ambiguous.exit_code == 1
    assert "more than one job id" in ambiguous.stderr and ambiguous.stderr.count("\n") == 1
    missing = run("job", "ffffffffffff")
    assert missing.stderr == "error: no job with id 'ffffffffffff'\n"


@pytest.mark.slow
def test_ctrl_c_stops_a_worker_with_process_children_without_tracebacks(
        url: str, tmp_path: Path) -> None:
    err = tmp_path / "worker.err"
    job_id = enqueue("chatty_child")
    with err.open("w") as stderr:  # its own session: Ctrl-C reaches the whole group
        worker = subprocess.Popen(
            [sys.executable, "-m", "conveyor", "worker"], cwd=ROOT, stderr=stderr,
            stdout=subprocess.DEVNULL, start_new_session=True,
            env={**os.environ, "CONVEYOR_URL": url, "PYTHONPATH": PYTHONPATH})
    try:
        wait_for(lambda: job_state(job_id) == "completed", "the child's job")
        os.killpg(worker.pid, signal.SIGINT)  # what a terminal does on Ctrl-C
        assert worker.wait(30) == 0
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
    assert "Traceback" not in err.read_text() and "KeyboardInterrupt" not in err.read_text()
