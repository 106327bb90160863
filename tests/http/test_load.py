"""The seed's failure case, made right: many parallel clients against a real `conveyor
serve` and a real worker; every 202 is exactly one stored job that runs exactly once
(counted with a ledger the task appends to). The seed lost 4 % at 50 parallel requests.

CONVEYOR_LOAD_REQUESTS sets the requests per client (default 200: 50 x 200 = 10,000).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.helpers import WorkerProcess, ledger_counts
from tests.http.conftest import ADMIN, HTTP_APP, ServeProcess

CLIENTS = 50
REQUESTS = int(os.environ.get("CONVEYOR_LOAD_REQUESTS", "200"))
AUTH = {"Authorization": f"Bearer {ADMIN}"}


async def _client(port: int, ledger: Path, number: int, out: list[tuple[int, bytes]]) -> None:
    """One keep-alive connection sending its requests one after another, like one of 50
    browsers or services. Plain HTTP/1.1 on a socket: an httpx client per connection
    would cost the test more CPU than the server it measures."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for i in range(REQUESTS):
            body = json.dumps({"kwargs": {"ledger": str(ledger),
                                          "n": number * REQUESTS + i}}).encode()
            writer.write(
                f"POST /v1/tasks/record/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {ADMIN}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            assert length is not None, head
            out.append((int(head[9:12]), await reader.readexactly(int(length.group(1)))))
    finally:
        writer.close()


@pytest.mark.slow
async def test_every_accepted_job_is_stored_once_and_runs_once(
        store_url: str, tmp_path: Path, serve: Callable[..., ServeProcess]) -> None:
    ledger = tmp_path / "ledger"
    server = serve(store_url)
    worker = WorkerProcess(store_url, "-q", "default", "-c", "50", app=HTTP_APP)
    try:
        answers: list[tuple[int, bytes]] = []
        started = time.monotonic()
        await asyncio.gather(*(_client(server.port, ledger, n, answers)
                               for n in range(CLIENTS)))
        accepting = time.monotonic() - started
        total = CLIENTS * REQUESTS
        assert Counter(status for status, _ in answers) == {202: total}
        accepted = [json.loads(body)["id"] for _, body in answers]
        assert len(set(accepted)) == total  # no two answers share a job
        async with httpx.AsyncClient(base_url=server.base, headers=AUTH) as client:
            deadline = time.monotonic() + 120
            while True:
                [queue] = [q for q in (await client.get("/v1/queues")).json()
                           if q["name"] == "default"]
                if queue["counts"]["completed"] == total or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            assert sum(queue["counts"].values()) == total  # stored: no more, no fewer
            assert queue["counts"]["completed"] == total
    finally:
        assert worker.stop() is not None
    print(f"{total} requests accepted in {accepting:.1f} s, all run after "
          f"{time.monotonic() - started:.1f} s")
    runs = ledger_counts(ledger)
    assert set(runs) == set(accepted)  # 0 lost
    assert set(runs.values()) == {1}  # 0 duplicated
