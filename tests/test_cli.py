"""The `conveyor` command line against real SQLite files and real worker processes.

Most tests run the CLI in-process with typer's CliRunner; the ones that need a worker
start `python -m conveyor worker|dev` as a child process and stop it with a signal.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from conveyor.cli import cli
from conveyor.testing import drain

ROOT = Path(__file__).resolve().parent.parent
APP = "tests.cli_app:app"
# children import this checkout's code and tests, not whatever conveyor is installed
PYTHONPATH = os.pathsep.join([str(ROOT), str(ROOT / "src")])
JOB_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$")
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO ", re.MULTILINE)

runner = CliRunner()


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh database for the test, with the test app selected through the environment."""
    db_url = f"sqlite:///{tmp_path / 'jobs.db'}"
    monkeypatch.setenv("CONVEYOR_URL", db_url)
    monkeypatch.setenv("CONVEYOR_APP", APP)
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT))
    # the app module reads CONVEYOR_URL when imported: import it anew for this database
    monkeypatch.delitem(sys.modules, "tests.cli_app", raising=False)
    return db_url


def run(*args: str) -> Result:
    return runner.invoke(cli, list(args))


def ok(*args: str) -> Result:
    result = run(*args)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def as_json(*args: str) -> Any:
    return json.loads(ok(*args, "--json").stdout)


def enqueue(*args: str) -> str:
    job_id = ok("enqueue", *args).stdout.strip()
    assert JOB_ID.match(job_id), job_id
    return job_id


def work_off() -> None:
    """Run a real in-process worker on the test app until nothing is left to do."""
    app = importlib.import_module("tests.cli_app").app
    drain(app, timeout=30)
    app.close()


def job_state(job_id: str) -> str:
    state: str = as_json("job", job_id)["state"]
    return state


def wait_for(predicate: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


class Child:
    """`python -m conveyor ...` in the background, output kept in files."""

    def __init__(self, tmp_path: Path, url: str, *args: str, env: dict[str, str] | None = None):
        self.out = tmp_path / "child.out"
        self.err = tmp_path / "child.err"
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "conveyor", *args], cwd=ROOT, stdout=out, stderr=err,
                env={**os.environ, "CONVEYOR_URL": url, "PYTHONPATH": PYTHONPATH, **(env or {})},
            )

    def registered(self) -> dict[str, Any] | None:
        return next((w for w in as_json("workers") if w["pid"] == self.proc.pid), None)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


@contextlib.contextmanager
def child(tmp_path: Path, url: str, *args: str, env: dict[str, str] | None = None
          ) -> Iterator[Child]:
    process = Child(tmp_path, url, *args, env=env)
    try:
        wait_for(lambda: process.registered() is not None or process.proc.poll() is not None,
                 "the worker to register")
        assert process.proc.poll() is None, process.err.read_text()
        yield process
    finally:
        process.stop()


# -- enqueue and read back -------------------------------------------------------------------
def test_enqueued_job_shows_in_job_jobs_and_queues(url: str) -> None:
    result = ok("enqueue", "add", "--arg", "x=2", "--arg", "y=3")
    job_id = result.stdout.strip()
    assert JOB_ID.match(job_id)
    assert "enqueued add on queue math (waiting)" in result.stderr

    job = as_json("job", job_id)
    assert (job["task"], job["queue"], job["state"]) == ("add", "math", "waiting")
    assert job["kwargs"] == {"x": 2, "y": 3}
    assert job["created_at"].endswith("Z")  # ISO datetimes, not raw milliseconds
    shown = ok("job", job_id).stdout
    assert job_id in shown and '{"x": 2, "y": 3}' in shown and "waiting" in shown

    assert job_id in ok("jobs").stdout
    assert [j["id"] for j in as_json("jobs")["jobs"]] == [job_id]
    [math] = [q for q in as_json("queues") if q["name"] == "math"]
    assert math["counts"]["waiting"] == 1 and math["paused"] is False
    assert re.search(r"math\s.*\s1\s", ok("queues").stdout)


def test_arg_values_are_json_when_they_parse_and_text_otherwise(url: str) -> None:
    as_number = enqueue("add", "--json", '{"x": 1}', "--arg", "y=90")
    assert as_json("job", as_number)["kwargs"] == {"x": 1, "y": 90}
    bare_text = enqueue("explode", "--arg", "message=hello world")
    assert as_json("job", bare_text)["kwargs"] == {"message": "hello world"}
    quoted = enqueue("explode", "--arg", 'message="90"')
    assert as_json("job", quoted)["kwargs"] == {"message": "90"}


def test_enqueue_options_reach_the_job(url: str) -> None:
    job_id = enqueue("add", "--arg", "x=1", "--queue", "other", "--delay", "1h",
                     "--priority", "5", "--attempts", "7", "--timeout", "2m")
    job = as_json("job", job_id)
    assert (job["queue"], job["state"], job["priority"]) == ("other", "delayed", 5)
    assert (job["max_attempts"], job["timeout"]) == (7, 120.0)


def test_a_second_enqueue_with_the_same_key_returns_the_first_job(url: str) -> None:
    first = ok("enqueue", "add", "--arg", "x=1", "--key", "click-1")
    second = ok("enqueue", "add", "--arg", "x=1", "--key", "click-1")
    assert first.stdout == second.stdout
    assert "exists already" in second.stderr and "exists already" not in first.stderr
    assert len(as_json("jobs")["jobs"]) == 1


def test_jobs_filters_and_pages_with_a_cursor(url: str) -> None:
    oldest = enqueue("add", "--arg", "x=1")
    middle = enqueue("explode", "--arg", "message=needle")
    newest = enqueue("add", "--arg", "x=3")
    assert [j["id"] for j in as_json("jobs", "--task", "add")["jobs"]] == [newest, oldest]
    assert [j["id"] for j in as_json("jobs", "--search", "needle")["jobs"]] == [middle]

    first = ok("jobs", "--limit", "2")
    cursor = re.search(r"next page: --cursor (\S+)", first.stdout)
    assert cursor is not None and newest in first.stdout and oldest not in first.stdout
    rest = as_json("jobs", "--limit", "2", "--cursor", cursor.group(1))
    assert [j["id"] for j in rest["jobs"]] == [oldest] and rest["next_cursor"] is None


def test_job_data_prints_literally_not_as_markup(url: str) -> None:
    job_id = enqueue("explode", "--arg", "message=[bold red]loud[/]")
    assert "[bold red]loud[/]" in ok("job", job_id).stdout


def test_url_option_overrides_the_apps_backend(url: str, tmp_path: Path) -> None:
    other = f"sqlite:///{tmp_path / 'other.db'}"
    ok("jobs")  # the app module is now imported, bound to the fixture's database
    job_id = ok("--url", other, "enqueue", "add", "--arg", "x=1").stdout.strip()
    assert os.environ["CONVEYOR_URL"] == url  # the override lasted one command
    assert as_json("jobs")["jobs"] == []
    assert [j["id"] for j in as_json("--url", other, "jobs")["jobs"]] == [job_id]


# -- acting on jobs --------------------------------------------------------------------------
def test_failed_job_shows_its_error_traceback_and_logs(url: str) -> None:
    job_id = enqueue("explode", "--arg", "message=kaboom")
    work_off()
    shown = ok("job", job_id).stdout
    assert "failed" in shown and "RuntimeError: kaboom" in shown
    assert "Traceback (most recent call last)" in shown  # the job's, not the CLI's
    assert "about to fail with 'kaboom'" in shown
    listed = ok("jobs", "--state", "failed").stdout
    assert job_id in listed and "RuntimeError: kaboom" in listed


def test_retry_all_failed_moves_failed_jobs_to_waiting(url: str) -> None:
    failed = {enqueue("explode"), enqueue("explode")}
    done = enqueue("add", "--arg", "x=1")
    work_off()
    assert {j["id"] for j in as_json("jobs", "--state", "failed")["jobs"]} == failed

    assert "retried 0 failed job(s)" in ok("retry", "--all-failed", "--queue", "slow").stdout
    assert "retried 2 failed job(s)" in ok("retry", "--all-failed").stdout
    waiting = as_json("jobs", "--state", "waiting")["jobs"]
    assert {j["id"] for j in waiting} == failed
    assert all(j["attempt"] == 0 for j in waiting)
    assert job_state(done) == "completed"


def test_retry_one_cancel_promote_and_remove(url: str) -> None:
    job_id = enqueue("add", "--arg", "x=1", "--delay", "1h")
    assert "waiting" in ok("promote", job_id).stdout and job_state(job_id) == "waiting"
    assert "cancelled" in ok("cancel", job_id).stdout and job_state(job_id) == "cancelled"
    again = run("cancel", job_id)
    assert again.exit_code == 1 and "cannot cancel" in again.stderr
    assert "waiting again" in ok("retry", job_id).stdout and job_state(job_id) == "waiting"
    assert "removed" in ok("remove", job_id).stdout
    gone = run("job", job_id)
    assert gone.exit_code == 1 and gone.stderr == f"error: job {job_id!r} was removed\n"


def test_pause_and_resume_show_in_queues(url: str) -> None:
    enqueue("add", "--arg", "x=1")
    ok("pause", "math")
    assert {q["name"]: q["paused"] for q in as_json("queues")}["math"] is True
    assert re.search(r"math\s+.\s+paused", ok("queues").stdout)
    ok("resume", "math")
    assert {q["name"]: q["paused"] for q in as_json("queues")}["math"] is False


def test_purge_refuses_without_yes_and_removes_only_finished_jobs(url: str) -> None:
    completed = enqueue("add", "--arg", "x=1")
    failed = enqueue("explode")
    work_off()
    waiting = enqueue("add", "--arg", "x=2")
    delayed = enqueue("add", "--arg", "x=3", "--delay", "1h")

    refused = run("purge")
    assert refused.exit_code == 1 and "would remove 2" in refused.stderr
    assert "--yes" in refused.stderr and len(as_json("jobs")["jobs"]) == 4

    assert "removed 1 failed jobs" in ok("purge", "--state", "failed", "--yes").stdout
    assert job_state(completed) == "completed"
    assert "removed 1 completed" in ok("purge", "--yes").stdout
    assert {j["id"] for j in as_json("jobs")["jobs"]} == {waiting, delayed}
    assert "was removed" in run("job", failed).stderr


def test_info_reports_version_backend_tasks_and_queues(url: str) -> None:
    enqueue("add", "--arg", "x=1")
    data = as_json("info")
    assert data["url"] == url
    assert data["tasks"] == ["add", "chatty", "chatty_child", "crawl", "explode", "nap", "record"]
    assert data["capabilities"]["multi_process"] is True
    assert data["workers"] == {"live": 0, "stale": 0}
    assert [q["counts"]["waiting"] for q in data["queues"] if q["name"] == "math"] == [1]
    shown = ok("info").stdout
    assert "0.1.0" in shown and url in shown and "math: 1 waiting" in shown


# -- with a worker process ---------------------------------------------------------------------
@pytest.mark.slow
def test_enqueue_wait_follows_a_worker_process(url: str, tmp_path: Path) -> None:
    env = {"CONVEYOR_CONCURRENCY": "3", "CONVEYOR_QUEUES": "math,slow"}
    with child(tmp_path, url, "worker", APP, "--lease", "5", env=env) as worker:
        registered = worker.registered()
        assert registered is not None
        assert (registered["concurrency"], registered["queues"]) == (3, ["math", "slow"])
        assert str(worker.proc.pid) in ok("workers").stdout

        done = ok("enqueue", "crawl", "--arg", "steps=3", "--wait", "--timeout-wait", "30")
        assert done.stdout.splitlines()[-1] == '{"steps": 3}'
        assert "100%" in done.stderr

        failed = run("enqueue", "explode", "--arg", "message=kaboom", "--wait")
        assert failed.exit_code == 1
        assert failed.stderr.splitlines()[-1].startswith("error: job ")
        assert "failed: RuntimeError: kaboom" in failed.stderr

        running = enqueue("crawl", "--arg", "steps=200", "--arg", "pause=0.05")
        wait_for(lambda: job_state(running) == "active", "the crawl to start")
        ok("purge", "--yes")  # finished jobs go; the running one must stay
        assert job_state(running) == "active"
        assert "cancel requested" in ok("cancel", running).stdout
        wait_for(lambda: job_state(running) == "cancelled", "the cancel to land")
        assert worker.stop() == 0
    assert LOG_LINE.search(worker.err.read_text())  # timestamped logs on stderr
    assert "Traceback" not in worker.err.read_text()


def test_enqueue_wait_gives_up_after_timeout_wait(url: str) -> None:
    result = run("enqueue", "add", "--arg", "x=1", "--wait", "--timeout-wait", "0.3")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1].endswith("did not finish within 0.3s (state: waiting)")


@pytest.mark.slow
def test_dev_runs_a_worker_and_says_what_to_try(url: str, tmp_path: Path) -> None:
    with child(tmp_path, url, "dev", APP) as dev:
        done = ok("enqueue", "add", "--arg", "x=41", "--wait", "--timeout-wait", "30")
        assert done.stdout.splitlines()[-1] == "42"
        assert dev.stop(signal.SIGINT) == 0
    panel = dev.out.read_text()
    assert url in panel and "math, slow" in panel and "conveyor enqueue add --arg x=1" in panel


# -- bad input: one line, a non-zero exit, nothing stored ---------------------------------------
BAD_INPUT = [
    (["enqueue", "nope"], 1, "unknown task 'nope'"),
    (["enqueue", "add", "--arg", "x"], 2, "'x' is not NAME=VALUE"),
    (["enqueue", "add", "--arg", "x=abc"], 1, "add: argument x"),
    (["enqueue", "add", "--arg", "y=1"], 1, "missing a required argument: 'x'"),
    (["enqueue", "add", "--arg", "x=1", "--arg", "z=1"], 1, "unexpected keyword argument"),
    (["enqueue", "add", "--json", "[1]"], 2, "JSON object"),
    (["enqueue", "add", "--arg", "x=1", "--delay", "-5"], 1, "delay must not be negative"),
    (["enqueue", "add", "--arg", "x=1", "--priority", "many"], 2, "--priority"),
    (["job", "no-such-id"], 1, "no job with id 'no-such-id'"),
    (["cancel", "no-such-id"], 1, "no job with id 'no-such-id'"),
    (["jobs", "--state", "bogus"], 2, "'bogus' is not one of"),
    (["jobs", "--cursor", "garbage"], 1, "bad cursor"),
    (["--app", "tests.no_such_module:app", "jobs"], 1, "cannot import app module"),
    (["--app", "tests.cli_app:missing", "jobs"], 1, "has no attribute 'missing'"),
    (["--app", "tests.cli_app:asyncio", "jobs"], 1, "not a Conveyor app"),
    (["--app", "tests.cli_app", "jobs"], 1, "MODULE:ATTRIBUTE"),
    (["--url", "mysql://db/jobs", "jobs"], 1, "unsupported backend URL"),
    (["retry"], 2, "give a job ID or --all-failed"),
    (["purge", "--state", "active", "--yes"], 2, "finished jobs only"),
    (["pause", "no spaces!"], 1, "bad queue name"),
    (["worker", "--concurrency", "0"], 2, "--concurrency"),
    (["worker", "-p", "0"], 1, "bad --processes '0'"),
    (["worker", "-p", "many"], 1, "a number of at least 1, or auto"),
    (["worker", "--max-memory-per-child", "lots"], 1, "bad memory size 'lots'"),
    (["worker", "--max-jobs-per-child", "0"], 2, "--max-jobs-per-child"),
    (["worker", "--loop", "tokio"], 2, "'tokio' is not one of"),
    (["frobnicate"], 2, "No such command"),
]


@pytest.mark.parametrize(("args", "code", "message"), BAD_INPUT,
                         ids=[" ".join(case[0]) for case in BAD_INPUT])
def test_bad_input_is_one_line_and_changes_nothing(url: str, args: list[str], code: int,
                                                   message: str) -> None:
    result = run(*args)
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)  # an exit code, not an escaped error
    assert as_json("jobs")["jobs"] == []


def test_bare_conveyor_prints_help(url: str) -> None:
    result = ok()
    assert "enqueue" in result.stdout and "purge" in result.stdout and result.stderr == ""
    assert ok("--version").stdout == "conveyor 0.1.0\n"


def test_commands_that_run_tasks_need_an_app(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONVEYOR_APP")
    result = run("enqueue", "add")
    assert result.exit_code == 1
    assert result.stderr == ("error: this command needs your app: pass --app MODULE:ATTR or "
                             "set CONVEYOR_APP\n")
    assert as_json("jobs")["jobs"] == []  # reading needs only the backend URL


def test_dev_without_an_app_or_project_defaults_says_how_to_name_one(
        url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONVEYOR_APP")
    monkeypatch.chdir(tmp_path)  # no pyproject.toml with [tool.conveyor.dev] here
    result = run("dev")
    assert result.exit_code == 1
    assert "this command needs your app" in result.stderr
    assert "[tool.conveyor.dev]" in result.stderr


def test_project_defaults_come_from_tool_conveyor_dev(tmp_path: Path) -> None:
    from conveyor.cli.dev import project_defaults

    assert project_defaults(tmp_path) == {}
    (tmp_path / "pyproject.toml").write_text(
        '[tool.conveyor.dev]\napp = "myproject.jobs:app"\npage = "myproject.web:serve"\n')
    assert project_defaults(tmp_path) == {"app": "myproject.jobs:app",
                                          "page": "myproject.web:serve"}


@pytest.mark.slow
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_the_worker_runs_on_the_chosen_event_loop(url: str, tmp_path: Path, loop: str) -> None:
    with child(tmp_path, url, "worker", "--loop", loop) as worker:
        job_id = enqueue("add", "--arg", "x=1")
        wait_for(lambda: job_state(job_id) == "completed", "the job to run")
    assert f"conveyor.worker: event loop: {loop}" in worker.err.read_text()


def test_shell_completion_installs_and_completes(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": PYTHONPATH, "HOME": str(tmp_path), "SHELL": "/bin/bash"}
    installed = subprocess.run([sys.executable, "-m", "conveyor", "--install-completion", "bash"],
                               env=env, capture_output=True, text=True, check=True)
    assert "bash completion installed" in installed.stdout
    assert "_conveyor_completion" in (tmp_path / ".bash_completions/conveyor.sh").read_text()
    completing = {**env, "_CONVEYOR_COMPLETE": "complete_bash", "COMP_WORDS": "conveyor wor",
                  "COMP_CWORD": "1"}
    offered = subprocess.run([sys.executable, "-m", "conveyor"], env=completing,
                             capture_output=True, text=True, check=True)
    assert offered.stdout.split() == ["worker", "workers"]


def test_job_says_why_it_is_waiting(url: str) -> None:
    job_id = enqueue("explode", "--arg", "message=x")  # no worker consumes its queue
    assert "waiting: no worker consumes queue" in ok("job", job_id).stdout
    reasons = as_json("job", job_id)["waiting_reasons"]
    assert [r["reason"] for r in reasons] == ["no_worker"]
