"""The conformance suite's flows group (tests/conformance/test_flows.py) run again on a
real Redis Cluster of three masters: storing a flow, releasing, failing, reviving and
spawning all stay in the flow's queue's slot (no CROSSSLOT), the ids and the flow's id are
indexed in their own slots, and a flow across queues is refused."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from conveyor.backends.base import Backend
from conveyor.backends.redis import RedisBackend
from tests.conformance.test_flows import *  # noqa: F403 (the group's tests)
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
