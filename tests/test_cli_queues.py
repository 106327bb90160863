"""`conveyor pause` / `resume` refuse a name that is no queue unless --create, and
`conveyor delete-queue` forgets an empty queue, so a typo never leaves a queue behind."""

from __future__ import annotations

from typing import Any

from tests.test_cli import as_json, enqueue, ok, run, url  # noqa: F401 (fixture)


def names() -> dict[str, Any]:
    return {q["name"]: q["paused"] for q in as_json("queues")}


def test_pausing_a_typo_is_refused_and_makes_no_queue(url: str) -> None:  # noqa: F811
    for command in ("pause", "resume"):
        refused = run(command, "typoq")
        assert refused.exit_code == 1
        assert refused.stderr.startswith("error: no queue named 'typoq'")
        assert "create" in refused.stderr
    assert "typoq" not in names()


def test_create_pauses_ahead_and_delete_queue_forgets_it(url: str) -> None:  # noqa: F811
    ok("pause", "later", "--create")
    assert names()["later"] is True
    assert "deleted" in ok("delete-queue", "later").stdout
    assert "later" not in names()
    assert run("delete-queue", "later").exit_code == 1


def test_a_queue_with_jobs_is_known_and_not_deleted(url: str) -> None:  # noqa: F811
    enqueue("add", "--arg", "x=1")
    [queue] = list(names())
    ok("pause", queue)
    refused = run("delete-queue", queue)
    assert refused.exit_code == 1 and "holds 1 job" in refused.stderr
    assert names()[queue] is True
