"""`conveyor limits`: the table and --json show each limiter's use per key and the jobs it
holds back; `set` and `reset` change a limit at runtime; bad specs and unknown names are
one line and a non-zero exit, and change nothing; `conveyor job` says why a job waits; on
every backend with flow control."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from conveyor.cli import cli
from tests import flow_app
from tests.redis_server import redis_server, unique_url  # noqa: F401 (fixture)

runner = CliRunner()


@pytest.fixture(params=["sqlite", "redis"])
def held(request: pytest.FixtureRequest, tmp_path: Path,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[flow_app.Held]:
    url = f"sqlite:///{tmp_path}/jobs.db" if request.param == "sqlite" \
        else unique_url(request.getfixturevalue("redis_server"))
    monkeypatch.setenv("CONVEYOR_URL", url)
    monkeypatch.setenv("CONVEYOR_APP", "tests.flow_app:app")
    flow_app.app.use(url)

    async def prepare() -> flow_app.Held | None:
        try:
            await flow_app.app.aopen()
            if not flow_app.app.backend.capabilities.flow_control:
                return None
            return await flow_app.hold_one(flow_app.app)
        finally:
            await flow_app.app.aclose()
    held = asyncio.run(prepare())
    if held is None:
        pytest.skip("backend without flow control")
    yield held
    flow_app.app.close()


def run(*args: str) -> Result:
    return runner.invoke(cli, list(args))


def ok(*args: str) -> str:
    result = run(*args)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result.stdout


def listed() -> dict[str, Any]:
    return {f"{d['queue']}/{d['name']}": d for d in json.loads(ok("limits", "--json"))}


def test_limits_show_use_per_key_and_blocked_jobs(held: flow_app.Held) -> None:
    table = ok("limits")
    header, *rows = [line for line in table.splitlines() if "│" in line or "┃" in line]
    assert "blocked" in header and "concurrency" in header
    acme = next(r for r in rows if "acme" in r)
    assert [c.strip() for c in acme.split("│")][1:-1] == [
        "llm", "task:ask", "task", "100/m", "1", "acme", "1", "1", "1", "-"]
    data = listed()
    assert set(data) == {"llm/task:ask", "mail/queue"}
    assert (data["llm/task:ask"]["active"], data["llm/task:ask"]["blocked"]) == (2, 1)
    assert [k["key"] for k in data["llm/task:ask"]["keys"]] == ["acme", "globex"]
    assert [d["name"] for d in json.loads(ok("limits", "--queue", "mail", "--json"))] == ["queue"]


def test_set_and_reset_change_a_limit_at_runtime(held: flow_app.Held) -> None:
    said = ok("limits", "set", "task:ask", "--rate", "5/s", "--concurrency", "3")
    assert said.strip() == ("task:ask (queue llm): rate 5/s, concurrency 3 (changed at "
                            "runtime; declared: rate 100/m, concurrency 1)")
    assert listed()["llm/task:ask"]["override"] == {"rate": "5/s", "concurrency": 3}
    assert "task:ask *" in ok("limits")
    ok("limits", "set", "task:ask", "--rate", "off")
    assert (listed()["llm/task:ask"]["rate"], listed()["llm/task:ask"]["concurrency"]) == (None, 3)
    assert ok("limits", "reset", "task:ask").strip() == (
        "task:ask (queue llm): rate 100/m, concurrency 1")
    assert listed()["llm/task:ask"]["override"] is None


def test_job_says_which_limit_holds_it(held: flow_app.Held) -> None:
    assert "waiting: concurrency full (task:ask key 'acme', 1/1)" in ok("job", held.blocked)
    [reason] = json.loads(ok("job", held.blocked, "--json"))["waiting_reasons"]
    assert reason == {"reason": "concurrency_full", "limiter": "task:ask", "key": "acme",
                      "used": 1, "limit": 1,
                      "detail": "concurrency full (task:ask key 'acme', 1/1)"}


BAD = [
    (["limits", "set", "task:ask", "--rate", "100/x"], 1, "is not a rate like"),
    (["limits", "set", "task:ask", "--rate", "0/s"], 1, "between 1 and"),
    (["limits", "set", "task:ask", "--concurrency", "0"], 1, "between 1 and"),
    (["limits", "set", "task:ask", "--concurrency", "many"], 1, "positive integer or 'off'"),
    (["limits", "set", "task:ask"], 2, "give --rate and/or --concurrency"),
    (["limits", "set", "nope", "--rate", "1/s"], 1, "no stored limiter named 'nope'"),
    (["limits", "reset", "nope"], 1, "no stored limiter named 'nope'"),
    (["limits", "set", "queue", "--queue", "llm", "-c", "2"], 1, "in queue 'llm'"),
]


@pytest.mark.parametrize(("args", "code", "message"), BAD, ids=[" ".join(b[0]) for b in BAD])
def test_bad_input_is_one_line_and_changes_nothing(held: flow_app.Held, args: list[str],
                                                   code: int, message: str) -> None:
    result = run(*args)
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert message in result.stderr
    assert all(d["override"] is None for d in listed().values())
