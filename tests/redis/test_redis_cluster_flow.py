"""The conformance suite's flow-control group (tests/conformance/test_flow_control.py) run
again on a real Redis Cluster of three masters: every gate, slot and pause script stays in
its queue's slot (no CROSSSLOT), and a worker of several queues splits its batch across
nodes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from conveyor.backends.base import Backend
from conveyor.backends.redis import RedisBackend
from tests.conformance.test_flow_control import *  # noqa: F403 (the group's tests)
from tests.redis_server import RedisCluster, unique_url


@pytest.fixture
async def backend(redis_cluster: RedisCluster) -> AsyncIterator[Backend]:
    b = RedisBackend(unique_url(redis_cluster))
    await b.open()
    try:
        assert b.cluster
        yield b
    finally:
        await b.close()
