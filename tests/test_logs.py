"""Logs operators can use: JSON lines from real worker and server processes, the job's
fields on every record emitted while it runs (the user's own loggers, threads and
process children included), one line per finished job, and tasks' records stored with
their job on request."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.test_cli import PYTHONPATH, ROOT, as_json, child, enqueue, job_state, url, wait_for
from tests.test_health import free_port

__all__ = ["url"]  # the fixture, used by name


def json_lines(path: Path) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for line in lines:
        assert {"timestamp", "level", "logger", "message"} <= set(line), line
    return lines


@pytest.mark.slow
def test_a_json_worker_tags_every_record_of_a_job_and_logs_one_line_per_job(
        url: str, tmp_path: Path) -> None:
    jobs = {enqueue("chatty", "--arg", "word=thread"): "chatty",
            enqueue("chatty_child", "--arg", "word=child"): "chatty_child",
            enqueue("explode"): "explode"}
    with child(tmp_path, url, "worker", "--log-format", "json", "--store-job-logs",
               "--log-jobs") as worker:
        for job_id in jobs:
            wait_for(lambda job_id=job_id: job_state(job_id) in ("completed", "failed"),
                     "the jobs to finish")
    lines = json_lines(worker.err)
    said = {line["message"]: line for line in lines if line["logger"] == "tests.chatty"}
    for message, task in (("saying thread", "chatty"),
                          ("saying child from a child", "chatty_child")):
        record = said[message]
        assert jobs[record["job_id"]] == task  # the user's own logger, in a thread or child
        assert (record["task"], record["queue"], record["attempt"]) == (task, "math", 1)
    finished = {line["job_id"]: line for line in lines if line["logger"] == "conveyor.jobs"}
    assert set(finished) == set(jobs)  # one line per finished job
    outcomes = {jobs[job_id]: line["outcome"] for job_id, line in finished.items()}
    assert outcomes == {"chatty": "completed", "chatty_child": "completed", "explode": "failed"}
    assert all(line["duration"] >= 0 and line["wait"] >= 0 for line in finished.values())

    stored = {jobs[j]: [e["message"] for e in as_json("job", j)["logs"]] for j in jobs}
    assert stored["chatty"] == ["INFO tests.chatty: saying thread"]
    assert stored["chatty_child"] == ["INFO tests.chatty: saying child from a child"]
    assert stored["explode"] == ["about to fail with 'boom'"]  # log(): no conveyor records


@pytest.mark.slow
def test_text_lines_carry_the_job_and_nothing_is_stored_unless_asked(
        url: str, tmp_path: Path) -> None:
    job_id = enqueue("chatty")
    with child(tmp_path, url, "worker", "--log-jobs"):
        wait_for(lambda: job_state(job_id) == "completed", "the job to finish")
    text = (tmp_path / "child.err").read_text()
    assert f"tests.chatty: saying hello [job {job_id} task=chatty queue=math attempt=1]" in text
    assert "conveyor.jobs: chatty completed in " in text
    assert as_json("job", job_id)["logs"] == []


@pytest.mark.slow
def test_the_line_per_job_is_opt_in(url: str, tmp_path: Path) -> None:
    job_id = enqueue("chatty")
    with child(tmp_path, url, "worker"):
        wait_for(lambda: job_state(job_id) == "completed", "the job to finish")
    text = (tmp_path / "child.err").read_text()
    assert f"[job {job_id} task=chatty" in text  # the job's own records still carry it
    assert "conveyor.jobs:" not in text


@pytest.mark.slow
def test_serve_writes_the_same_json_shape(url: str, tmp_path: Path) -> None:
    port = free_port()
    err = tmp_path / "serve.err"
    env = {**os.environ, "CONVEYOR_URL": url, "PYTHONPATH": PYTHONPATH, "CONVEYOR_OPEN": "1"}
    with err.open("w") as stderr:
        server = subprocess.Popen(
            [sys.executable, "-m", "conveyor", "serve", "--port", str(port), "--log-format",
             "json", "--access-log"], cwd=ROOT, stderr=stderr, stdout=subprocess.DEVNULL,
            env=env)
    try:
        def answers() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
            except httpx.TransportError:
                return server.poll() is not None
        wait_for(answers, "the server")
        assert server.poll() is None, err.read_text()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    loggers = {line["logger"] for line in json_lines(err)}
    assert {"uvicorn.error", "uvicorn.access"} <= loggers
