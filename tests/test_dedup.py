"""Dedup modes and expiry from the app's side: the Dedup rule and its errors, keys from
templates and callables, per task and per call, the enqueue answer, and a worker that
never runs an expired job. (The backends' side is tests/conformance/test_dedup.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor import Conveyor, Dedup, JobFilter
from conveyor.errors import InvalidOptionError, JobCancelledError
from conveyor.jobs import JobState
from conveyor.testing import drain
from tests.helpers import ROOT


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Conveyor]:
    a = Conveyor(f"sqlite:///{tmp_path}/dedup.db")
    a.open()
    yield a
    a.close()


def _count(app: Conveyor) -> int:
    return len(app.run_sync(app.backend.list_jobs, JobFilter()).jobs)


@pytest.mark.parametrize(("kwargs", "says"), [
    ({"key": "k", "ttl": -1}, "negative"),
    ({"key": "k", "ttl": 0}, "longer than 0"),
    ({"key": "k", "ttl": "-2s"}, "negative"),
    ({"key": "k", "until": "done"}, "until must be"),
    ({"key": "k", "debounce": "1s", "until": "finished"}, "does not take until"),
    ({"key": "k", "debounce": "1s", "ttl": "1s"}, "different modes"),
    ({"key": "k", "keep_last": True, "until": "started"}, "does not take until"),
    ({"key": "k", "max_wait": "1s"}, "give debounce"),
    ({"key": "k", "debounce": "2s", "max_wait": "1s"}, "at least debounce"),
    ({"key": "k", "ttl": "1s", "replace": True}, "keeps the first"),
    ({"key": "k", "replace": True}, "has not started"),
    ({"key": ""}, "1 to 255"),
    ({"key": 3.5}, "string"),
    ({"key": "a\nb"}, "control characters"),
    ({"key": "{user"}, "template"),
    ({"key": "{user.__class__}"}, "must name an argument"),
    ({"key": "{0}"}, "must name an argument"),
])
def test_a_bad_dedup_rule_is_refused_when_made(kwargs: dict[str, Any], says: str) -> None:
    with pytest.raises(InvalidOptionError, match=says):
        Dedup(**kwargs)


def test_bad_options_store_nothing(app: Conveyor) -> None:
    @app.task
    def sync(user: int) -> None: ...

    with pytest.raises(InvalidOptionError, match="dedup must be a Dedup"):
        sync.options(dedup="user")  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionError, match="does not fit the call"):
        sync.options(dedup=Dedup("u:{nobody}")).enqueue(1)
    with pytest.raises(InvalidOptionError, match="later than the job's delay"):
        sync.options(expires="1s", delay="2s").enqueue(1)
    with pytest.raises(InvalidOptionError, match="expires"):
        sync.options(expires=-1)
    assert _count(app) == 0


def test_a_task_template_key_folds_calls_with_the_same_arguments(app: Conveyor) -> None:
    @app.task(dedup=Dedup("user:{user}", until="started", replace=True))
    def sync(user: int, full: bool = False) -> None: ...

    first = sync.enqueue(1)
    again = sync.enqueue(1, full=True)
    other = sync.enqueue(2)
    assert first.created and first.folded_into is None
    assert not again.created and again.folded_into == first.id
    assert other.created and other.id != first.id
    assert again.refresh().kwargs == {"user": 1, "full": True}


def test_a_callable_key_and_a_per_call_rule(app: Conveyor) -> None:
    @app.task(dedup=Dedup(lambda user, **_: f"u{user % 2}"))
    def sync(user: int) -> None: ...

    assert not sync.enqueue(3).folded_into
    assert sync.enqueue(5).folded_into  # 5 % 2 == 3 % 2
    alone = sync.options(dedup=Dedup("manual")).enqueue(7)  # the call's rule wins
    assert alone.created


def test_keys_are_scoped_by_task(app: Conveyor) -> None:
    @app.task(dedup=Dedup("k"))
    def one() -> None: ...

    @app.task(dedup=Dedup("k"))
    def two() -> None: ...

    assert one.enqueue().created and two.enqueue().created
    assert not one.enqueue().created


def test_key_idempotency_works_as_before(app: Conveyor) -> None:
    @app.task
    def sync(user: int) -> None: ...

    first = sync.options(key="once").enqueue(1)
    again = sync.options(key="once").enqueue(2)
    assert not again.created and again.id == first.id and again.folded_into == first.id


def test_an_expired_job_never_runs_and_its_result_says_cancelled(app: Conveyor) -> None:
    ran: list[int] = []

    @app.task(expires=0.05)
    def job(n: int) -> None:
        ran.append(n)

    handle = job.enqueue(1)
    time.sleep(0.1)  # the backend's clock must pass the expiry: nothing to await
    drain(app)
    assert ran == []
    assert handle.refresh().state is JobState.CANCELLED
    assert handle.job.errors[-1]["reason"] == "expired"
    with pytest.raises(JobCancelledError):
        handle.result(timeout=1)
    fresh = job.options(expires="10m").enqueue(2)
    drain(app)
    assert ran == [2] and fresh.refresh().state is JobState.COMPLETED


def test_the_readme_dedup_example_runs(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}"}
    env.pop("CONVEYOR_URL", None)
    done = subprocess.run([sys.executable, "-m", "examples.dedup"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "conveyor.db").exists()


def test_a_flow_refuses_jobs_with_a_dedup_rule_or_expiry(app: Conveyor) -> None:
    from conveyor.errors import InvalidFlowError

    @app.task(dedup=Dedup("k"))
    def once() -> None: ...

    @app.task
    def plain() -> None: ...

    flow = app.new_flow()
    with pytest.raises(InvalidFlowError, match="Dedup"):
        flow.add(once.prepare())
    with pytest.raises(InvalidFlowError, match="expires"):
        flow.add(plain.options(expires="1m").prepare())
    assert _count(app) == 0
