"""The README's Python client: a service that asks a conveyor server (`conveyor serve`
with `CONVEYOR_TOKENS=admin:s3cret`) for a report and waits for it."""

from __future__ import annotations

from conveyor.client import Client


def report(user_id: int, server: str = "http://jobs.internal:8000") -> object:
    with Client(server, token="s3cret") as client:
        job = client.submit("generate_report", user_id=user_id, key=f"report-{user_id}")
        return client.wait(job.id, timeout=120)    # SSE, or via="poll"; JobFailedError
