from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import Conveyor
from tests.flows import flow_app
from tests.redis_server import redis_server, unique_url  # noqa: F401 (a session fixture)


@pytest.fixture(params=["sqlite", "redis"])
def app(request: pytest.FixtureRequest, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Conveyor]:
    """The flow tasks on a fresh store of each backend (worker processes started by a
    test find it through CONVEYOR_URL)."""
    if request.param == "redis":
        url = unique_url(request.getfixturevalue("redis_server"))
    else:
        url = f"sqlite:///{tmp_path}/jobs.db"
    monkeypatch.setenv("CONVEYOR_URL", url)
    monkeypatch.setenv("FLOW_LEDGER", str(tmp_path / "ledger"))
    flow_app.app.use(url)
    yield flow_app.app
    flow_app.app.close()


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    return tmp_path / "ledger"


def runs(ledger: Path) -> list[tuple[str, str, int]]:
    """(job id, task, attempt) per run, in the order they ran."""
    if not ledger.exists():
        return []
    out = []
    for line in ledger.read_text().splitlines():
        job_id, task, attempt, _pid = line.split()
        out.append((job_id, task, int(attempt)))
    return out
