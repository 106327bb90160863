"""The dashboard's live state stops for sure: closing ends the throughput counter even when
a backend call swallowed its cancellation (as redis-py 8.1's asyncio client sometimes does).
"""

from __future__ import annotations

import pytest

from conveyor import Conveyor
from conveyor.dashboard.live import Live
from conveyor.web.hub import EventHub
from tests.helpers import SwallowingCall


@pytest.mark.timeout(20)
@pytest.mark.parametrize("retry", [0.0, 3600.0], ids=["call-returns", "call-retries"])
async def test_closing_stops_the_counter_though_a_backend_call_swallowed_the_cancel(
        conveyor_app: Conveyor, monkeypatch: pytest.MonkeyPatch, retry: float) -> None:
    """call-returns: after the swallowed cancel the counter loops on as if nothing
    happened; call-retries: the call itself goes on (a command sent again)."""
    backend = conveyor_app.backend
    now = SwallowingCall(backend.now, "dashboard-throughput", retry=retry)
    monkeypatch.setattr(backend, "now", now)
    hub = EventHub(conveyor_app)
    live = Live(conveyor_app, hub, linger=3600)  # idle, it would count on for an hour
    try:
        async with live.watching():
            await now.entered.wait()  # the counter is inside its first backend call
        await live.close()
        assert now.swallowed
        assert live._counter is not None and live._counter.done()
    finally:
        await hub.aclose()
