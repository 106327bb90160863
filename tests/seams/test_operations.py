"""Operator actions through the app, sync and async twins, on every backend; which states
each applies to is written once (conveyor.operations)."""

from __future__ import annotations

import pytest

from conveyor import Conveyor, JobFilter, JobState
from conveyor.errors import (
    InvalidOptionError,
    JobNotFoundError,
    JobRemovedError,
    JobStateError,
    QueueNotEmptyError,
    UnknownQueueError,
)
from conveyor.operations import ACTION_STATES, applies, narrowed


def _app(url: str) -> Conveyor:
    app = Conveyor(url)

    @app.task(queue="ops")
    async def work(n: int) -> int:
        return n

    return app


def test_sync_twins_act_and_refuse_with_the_states_they_apply_to(backend_url: str) -> None:
    app = _app(backend_url)
    try:
        later = app.get_task("work").options(delay="1h").enqueue(n=1)
        assert app.promote_job(later.id).state is JobState.WAITING
        cancelled = app.cancel_job(later.id)
        assert cancelled.state is JobState.CANCELLED
        with pytest.raises(JobStateError, match="cannot promote job .*: it is cancelled "
                                                r"\(only delayed jobs\)"):
            app.promote_job(later.id)
        assert app.retry_job(later.id).state is JobState.WAITING
        app.remove_job(later.id)
        with pytest.raises(JobRemovedError):
            app.cancel_job(later.id)
        with pytest.raises(JobNotFoundError):
            app.retry_job("no-such-job")
    finally:
        app.close()


async def test_async_twins_do_the_same(backend_url: str) -> None:
    app = _app(backend_url)
    try:
        later = await app.get_task("work").options(delay="1h").aenqueue(n=1)
        assert (await app.apromote_job(later.id)).state is JobState.WAITING
        assert (await app.acancel_job(later.id)).state is JobState.CANCELLED
        with pytest.raises(JobStateError, match="only delayed jobs"):
            await app.apromote_job(later.id)
        assert (await app.aretry_job(later.id)).state is JobState.WAITING
        await app.aremove_job(later.id)
        with pytest.raises(JobRemovedError):
            await app.aget_job(later.id)
    finally:
        await app.aclose()


async def test_by_filter_changes_only_jobs_the_action_applies_to(backend_url: str) -> None:
    app = _app(backend_url)
    task = app.get_task("work")
    try:
        due = [await task.aenqueue(n=i) for i in range(3)]
        later = [await task.options(delay="1h").aenqueue(n=i) for i in range(2)]
        promoted = await app.apromote_jobs(JobFilter(queue="ops"))
        assert sorted(promoted) == sorted(j.id for j in later)  # waiting ones untouched
        cancelled = await app.acancel_jobs(JobFilter(queue="ops", states=(JobState.WAITING,)))
        assert sorted(cancelled) == sorted(j.id for j in due + later)
        # asking for states the action cannot change changes nothing
        assert await app.aretry_jobs(JobFilter(queue="ops", states=(JobState.WAITING,))) == []
        assert len(await app.aretry_jobs(JobFilter(queue="ops"))) == 5
        assert len(await app.aremove_jobs(JobFilter(queue="ops"))) == 5
    finally:
        await app.aclose()


def test_pause_and_resume_queue_and_refuse_bad_names(backend_url: str) -> None:
    app = _app(backend_url)
    try:
        app.get_task("work").enqueue(n=1)
        app.pause_queue("ops")
        assert {q.name: q.paused for q in app.queues()}["ops"] is True
        app.resume_queue("ops")
        assert {q.name: q.paused for q in app.queues()}["ops"] is False
        with pytest.raises(InvalidOptionError, match="bad queue name"):
            app.pause_queue("no spaces <b>")
        with pytest.raises(UnknownQueueError, match="no queue named 'typoq'"):
            app.pause_queue("typoq")
        assert "typoq" not in {q.name for q in app.queues()}  # a typo makes no queue
        with pytest.raises(QueueNotEmptyError):
            app.delete_queue("ops")
    finally:
        app.close()


async def test_queue_twins_create_and_delete(backend_url: str) -> None:
    app = _app(backend_url)
    try:
        await app.apause_queue("later", create=True)
        assert {q.name: q.paused for q in await app.backend.queues()}["later"] is True
        await app.adelete_queue("later")  # empty: forgotten (and no longer paused)
        assert "later" not in {q.name for q in await app.backend.queues()}
        with pytest.raises(UnknownQueueError):
            await app.aresume_queue("later")
    finally:
        await app.aclose()


def test_the_states_are_written_once() -> None:
    assert applies("cancel", JobState.ACTIVE) and not applies("remove", JobState.ACTIVE)
    assert ACTION_STATES["promote"] == (JobState.DELAYED,)
    assert narrowed("retry", JobFilter()).states == (JobState.FAILED, JobState.CANCELLED)
    assert narrowed("retry", JobFilter(states=(JobState.FAILED, JobState.WAITING))).states \
        == (JobState.FAILED,)
