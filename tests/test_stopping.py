"""Stopping a task whose cancellation is swallowed (as redis-py 8.1's asyncio client
sometimes does inside a call): the stop still finishes, it never waits forever.

Each test carries a timeout: a regression fails it instead of hanging the run.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from conveyor import Conveyor, Worker
from conveyor.cli.running import run_worker
from conveyor.errors import ResultTimeoutError
from conveyor.stopping import cancel_until_done
from conveyor.testing import adrain
from tests.helpers import SwallowingCall

pytestmark = pytest.mark.timeout(20)


async def _nothing() -> None:
    return None


async def _loop_over(call: SwallowingCall) -> None:
    while True:  # a loop over backend calls, with no flag of its own
        await call()


async def test_a_task_that_swallows_a_cancellation_is_stopped_by_cancelling_again() -> None:
    call = SwallowingCall(_nothing, "looping")
    task = asyncio.create_task(_loop_over(call), name="looping")
    await call.entered.wait()
    assert await cancel_until_done(task) == []
    assert call.swallowed and task.cancelled()


async def test_the_errors_stopped_tasks_end_with_are_returned() -> None:
    async def fails_on_cancel() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise RuntimeError("cleanup failed") from None

    failing, finished = asyncio.create_task(fails_on_cancel()), asyncio.create_task(_nothing())
    await asyncio.sleep(0)
    [error] = await cancel_until_done(failing, finished)
    assert isinstance(error, RuntimeError) and str(error) == "cleanup failed"
    assert finished.result() is None


async def test_the_callers_own_cancellation_is_never_held_back() -> None:
    release = asyncio.Event()

    async def stubborn() -> None:  # swallows every cancellation until released
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await release.wait()

    task = asyncio.create_task(stubborn())
    stopper = asyncio.create_task(cancel_until_done(task))
    await asyncio.sleep(0.3)  # the stopper has cancelled it more than once by now
    stopper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopper
    assert not task.done()
    release.set()
    await task


async def test_a_drain_that_times_out_ends_though_its_worker_swallowed_the_cancellation(
        app: Conveyor, monkeypatch: pytest.MonkeyPatch) -> None:
    call = SwallowingCall(app.aopen)  # the worker's first call: it opens the backend
    monkeypatch.setattr(app, "aopen", call)
    with pytest.raises(ResultTimeoutError):
        await adrain(app, ["default"], timeout=0.2)
    assert call.swallowed


async def test_a_dev_service_that_swallows_its_cancellation_is_stopped_with_the_worker(
        app: Conveyor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("conveyor.cli.running.SERVICE_GRACE", 0.1)
    call = SwallowingCall(_nothing, "service")
    worker = Worker(app, ["default"], poll_interval=0.05)
    stopped: list[Any] = []

    async def service() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.set_name("service")
        try:
            await _loop_over(call)
        finally:
            stopped.append(True)

    async def stop_when_entered() -> None:
        await call.entered.wait()
        worker.stop()

    stopper = asyncio.create_task(stop_when_entered())
    await run_worker(app, worker, service())
    await stopper
    assert call.swallowed and stopped == [True]
