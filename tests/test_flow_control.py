"""Flow control from the app's side: declarations and their errors, the gates a job gets,
storing declarations when a worker starts, the runtime API, and a worker honouring a cap.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor import Conveyor
from conveyor.errors import ConfigurationError, InvalidOptionError, InvalidRequestError
from conveyor.flow.spec import Rate, parse_rate
from conveyor.testing import drain


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Conveyor]:
    a = Conveyor(f"sqlite:///{tmp_path}/flow.db")
    yield a
    a.close()


@pytest.mark.parametrize(("text", "rate"), [
    ("100/m", Rate(100, 60_000)), ("10/s", Rate(10, 1000)), ("5/10s", Rate(5, 10_000)),
    ("1000/500ms", Rate(1000, 500)), (" 3 / h ", Rate(3, 3_600_000)),
])
def test_rates_parse(text: str, rate: Rate) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("bad", ["100/x", "-5/s", "0/s", "10", "ten/s", "5/0s", 5, None])
def test_a_bad_rate_is_refused_and_no_task_is_registered(app: Conveyor, bad: Any) -> None:
    with pytest.raises(InvalidOptionError, match="rate"):
        app.task(rate_limit=bad if bad is not None else 1.5, name="bad")(  # type: ignore[arg-type]
            lambda: 1)
    assert "bad" not in app.tasks and app.flow.task_limits == {}


@pytest.mark.parametrize("bad", [-1, 0, True, 2.5, "3"])
def test_a_bad_concurrency_is_refused(app: Conveyor, bad: Any) -> None:
    with pytest.raises(InvalidOptionError, match="concurrency"):
        app.task(concurrency=bad, name="bad")(lambda: 1)
    assert "bad" not in app.tasks


def test_an_unknown_limiter_is_refused(app: Conveyor) -> None:
    app.limiter("openai", "500/m")
    with pytest.raises(ConfigurationError, match=r"unknown limiter 'smtp' \(known: openai\)"):
        app.task(limiters=["smtp"], name="mail")(lambda: 1)
    assert "mail" not in app.tasks


def test_a_shared_limiter_lives_in_one_queue(app: Conveyor) -> None:
    app.limiter("openai", "500/m")
    app.task(limiters=["openai"], queue="a", name="one")(lambda: 1)
    with pytest.raises(ConfigurationError, match="lives in queue 'a'"):
        app.task(limiters=["openai"], queue="b", name="two")(lambda: 1)


def test_a_key_argument_must_be_a_parameter(app: Conveyor) -> None:
    with pytest.raises(ConfigurationError, match="'tenant' is not a parameter"):
        app.task(rate_limit="1/s", rate_key="tenant", name="k")(lambda user: 1)


def test_a_job_gets_one_gate_per_limiter_keyed_by_its_arguments(app: Conveyor) -> None:
    app.limiter("openai", "500/m")
    app.queue("llm", concurrency=50)

    @app.task(queue="llm", rate_limit="10/s", rate_key="tenant", concurrency=2,
              concurrency_key=lambda tenant, prompt: f"{tenant}-c", limiters=["openai"])
    def ask(tenant: str, prompt: str) -> None: ...

    job = ask.prepare("acme", "hi")
    assert job.flow == ('[["openai","",""],["queue","",""],'
                        '["task:ask","acme","acme-c"]]')
    assert ask.options(rate_key="other").prepare("acme", "hi").flow == (
        '[["openai","",""],["queue","",""],["task:ask","other","acme-c"]]')


def test_a_task_without_limits_has_no_gates(app: Conveyor) -> None:
    plain = app.task(name="plain")(lambda: 1)
    assert plain.prepare().flow is None
    with pytest.raises(InvalidOptionError, match="neither the task nor queue"):
        plain.options(rate_key="x").prepare()


def test_a_bad_key_value_stores_nothing(app: Conveyor) -> None:
    @app.task(rate_limit="1/s", rate_key="tenant")
    def keyed(tenant: Any) -> None: ...

    with pytest.raises(InvalidOptionError, match="string or an integer"):
        keyed.enqueue(["not", "a", "key"])
    assert app.queues() == []


def test_a_worker_stores_the_declared_limits_and_runtime_changes_win(app: Conveyor) -> None:
    app.queue("mail", rate_limit="10/s")

    @app.task(queue="mail", concurrency=3)
    def send() -> None: ...

    assert app.limits.list() == []
    send.enqueue()
    drain(app, ["mail"])
    stored = {(i.queue, i.name): i.effective for i in app.limits.list()}
    assert stored == {("mail", "queue"): {"rate": [10, 1000], "concurrency": None},
                      ("mail", "task:send"): {"rate": None, "concurrency": 3}}
    changed = app.limits.set("task:send", rate_limit="5/m")
    assert changed.effective == {"rate": [5, 60_000], "concurrency": 3}
    assert app.limits.set("task:send", concurrency="off").effective == {
        "rate": [5, 60_000], "concurrency": None}
    assert app.limits.reset("task:send").effective == {"rate": None, "concurrency": 3}
    with pytest.raises(InvalidRequestError, match="no stored limiter named 'nope'"):
        app.limits.set("nope", rate_limit="1/s")
    with pytest.raises(InvalidOptionError):
        app.limits.set("task:send", rate_limit="100/x")


def test_a_worker_never_runs_more_than_the_cap(app: Conveyor) -> None:
    running, peak, lock = [0], [0], threading.Lock()

    @app.task(concurrency=2)
    def busy() -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1

    for _ in range(12):
        busy.enqueue()
    assert drain(app, ["default"], concurrency=8) == 12
    assert peak[0] == 2
