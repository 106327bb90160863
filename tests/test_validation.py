"""Bad input gets a clear ConveyorError subclass and stores nothing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pydantic
import pytest

import conveyor
from conveyor import (
    ArgumentsError,
    ConfigurationError,
    Conveyor,
    InvalidOptionError,
    JobNotFoundError,
    JobRemovedError,
    JobState,
    JobStateError,
    PayloadTooLargeError,
    UnknownTaskError,
)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Conveyor]:
    a = Conveyor(f"sqlite:///{tmp_path}/jobs.db", max_payload_bytes=2_000)
    yield a
    a.close()


class Address(pydantic.BaseModel):
    city: str
    zip: str


def register(app: Conveyor) -> dict[str, conveyor.Task]:  # type: ignore[type-arg]
    @app.task
    async def report(user_id: int, days: int = 30, *, since: dt.date | None = None) -> int:
        return user_id

    @app.task
    async def ship(to: Address, items: list[int]) -> str:
        return to.city

    @app.task
    async def anything(payload):  # type: ignore[no-untyped-def]
        return payload

    return {"report": report, "ship": ship, "anything": anything}


def stored(app: Conveyor) -> int:
    return sum(sum(q.counts.values()) for q in app.queues())


def test_valid_call_is_normalised_to_json(app: Conveyor) -> None:
    tasks = register(app)
    job = tasks["report"].enqueue("7", since=dt.date(2026, 1, 2))
    assert job.job.kwargs == {"user_id": 7, "since": "2026-01-02"}
    shipped = tasks["ship"].enqueue({"city": "Lyon", "zip": "69001"}, items=[1, 2])
    assert shipped.job.kwargs["to"] == {"city": "Lyon", "zip": "69001"}


@pytest.mark.parametrize(
    ("call", "error", "text"),
    [
        (lambda t: t["report"].enqueue(user_id="seven"), ArgumentsError, "user_id"),
        (lambda t: t["report"].enqueue(), ArgumentsError, "user_id"),
        (lambda t: t["report"].enqueue(1, 2, 3), ArgumentsError, "too many"),
        (lambda t: t["report"].enqueue(1, colour="red"), ArgumentsError, "colour"),
        (lambda t: t["ship"].enqueue({"city": "Lyon"}, items=[1]), ArgumentsError, "zip"),
        (lambda t: t["ship"].enqueue({"city": "a", "zip": "b"}, items="x"), ArgumentsError,
         "items"),
        (lambda t: t["anything"].enqueue(object()), ArgumentsError, "JSON"),
        (lambda t: t["anything"].enqueue({1, 2}), ArgumentsError, "JSON"),
        (lambda t: t["anything"].enqueue("x" * 5_000), PayloadTooLargeError, "limit"),
        (lambda t: t["report"].options(delay=-1).enqueue(1), InvalidOptionError, "delay"),
        (lambda t: t["report"].options(delay="soon").enqueue(1), InvalidOptionError, "delay"),
        (lambda t: t["report"].options(delay=1e300).enqueue(1), InvalidOptionError, "10 years"),
        (lambda t: t["report"].options(timeout="999999d"), InvalidOptionError, "10 years"),
        (lambda t: t["report"].options(backoff="sometimes"), InvalidOptionError, "backoff"),
        (lambda t: t["report"].options(backoff=[]), InvalidOptionError, "backoff"),
        (lambda t: t["report"].options(backoff={"type": "exponential", "factor": 0}),
         InvalidOptionError, "factor"),
        (lambda t: t["report"].options(attempts=0), InvalidOptionError, "attempts"),
        (lambda t: t["report"].options(priority="high"), InvalidOptionError, "priority"),
        (lambda t: t["report"].options(timeout=0), InvalidOptionError, "timeout"),
        (lambda t: t["report"].options(key="k" * 300), InvalidOptionError, "key"),
        (lambda t: t["report"].options(queue="bad queue!"), InvalidOptionError, "queue"),
        (lambda t: t["report"].options(run_at=dt.datetime(2030, 1, 1)), InvalidOptionError,
         "timezone"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_stored(app: Conveyor, call: object,
                                                    error: type[Exception], text: str) -> None:
    tasks = register(app)
    with pytest.raises(error, match=text) as info:
        call(tasks)  # type: ignore[operator]
    assert isinstance(info.value, conveyor.ConveyorError)
    assert "\n" not in str(info.value)
    assert stored(app) == 0


def test_argument_errors_list_every_field_problem(app: Conveyor) -> None:
    tasks = register(app)
    with pytest.raises(ArgumentsError) as info:
        tasks["ship"].enqueue({"city": 5}, items=["a"])
    locations = [tuple(e["loc"]) for e in info.value.errors]
    assert ("to", "zip") in locations and ("items", 0) in locations


def test_unknown_task_name_is_refused(app: Conveyor) -> None:
    register(app)
    with pytest.raises(UnknownTaskError, match=r"nope.*known: anything, report, ship"):
        app.enqueue("nope")
    assert stored(app) == 0


def test_bulk_enqueue_with_one_bad_call_stores_nothing(app: Conveyor) -> None:
    tasks = register(app)
    with pytest.raises(ArgumentsError):
        app.enqueue_many([tasks["report"].prepare(1), tasks["report"].prepare("x")])
    assert stored(app) == 0


def test_unknown_job_id_is_not_found_and_removed_job_is_gone(app: Conveyor) -> None:
    tasks = register(app)
    with pytest.raises(JobNotFoundError, match="no job"):
        app.get_job("0190-not-a-job")
    job = tasks["report"].enqueue(1)
    app.remove_job(job.id)
    with pytest.raises(JobRemovedError, match="removed"):
        app.get_job(job.id)


def test_actions_on_jobs_in_the_wrong_state_say_why(app: Conveyor) -> None:
    tasks = register(app)
    job = tasks["report"].enqueue(1)
    with pytest.raises(JobStateError, match="waiting"):
        app.retry_job(job.id)
    assert app.get_job(job.id).state is JobState.WAITING


def test_duplicate_task_names_are_refused(app: Conveyor) -> None:
    register(app)
    with pytest.raises(ConfigurationError, match="registered already"):
        @app.task(name="report")
        async def other() -> None: ...


def test_bad_backend_urls_are_refused() -> None:
    for url in ("mysql://x", "sqlite://host/x.db", "sqlite:///", "nonsense",
                "sqlite:///x.db?journal=off"):
        with pytest.raises(ConfigurationError):
            Conveyor(url)


def test_process_tasks_must_be_importable(app: Conveyor) -> None:
    with pytest.raises(ConfigurationError, match="module level"):
        @app.task(executor="process")
        def nested() -> None: ...


def test_public_api_is_pinned() -> None:
    assert sorted(conveyor.__all__) == sorted([
        "ArgumentsError", "Backend", "BackendError", "BackendUnavailableError", "Cancel",
        "Capabilities", "ConfigurationError", "Conveyor", "ConveyorError", "Dedup", "Enqueuing",
        "Event", "InvalidJobError", "InvalidOptionError", "InvalidRequestError", "Job",
        "JobCancelledError", "JobContext", "JobFailedError", "JobFilter", "JobHandle",
        "JobNotFoundError", "JobOptions", "JobRemovedError", "JobState", "JobStateError",
        "NonRetryableError", "PayloadTooLargeError", "Plugin", "RateLimited",
        "ResultTimeoutError", "Retention", "Retry", "Task", "UnknownTaskError", "Worker",
        "WorkerStartError", "__version__", "current_job", "log", "progress",
        "Flow", "InvalidFlowError", "chain", "group",
    ])
    for name in conveyor.__all__:
        assert getattr(conveyor, name) is not None
