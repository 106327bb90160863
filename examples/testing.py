"""The README's "Testing your own tasks": a test of examples/tasks.py with a real worker on
a fresh SQLite file (tests/test_examples.py calls it as pytest would)."""

from __future__ import annotations

from pathlib import Path

from conveyor.testing import drain
from examples.tasks import app, generate_report


def test_report(tmp_path: Path) -> None:
    app.use(f"sqlite:///{tmp_path}/jobs.db")   # a fresh database for this test
    job = generate_report.enqueue(user_id=1)
    drain(app)                    # a real worker, in-process, until no job is left
    assert job.result()["user_id"] == 1
