"""The seams tests run the seams app (seams_app.py) on every backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import Conveyor
from tests.conformance.conftest import backend, backend_url  # noqa: F401 (parametrized fixtures)
from tests.redis_server import redis_server  # noqa: F401 (a session fixture)
from tests.seams import seams_app


@pytest.fixture
def seams(backend_url: str, tmp_path: Path,  # noqa: F811
          monkeypatch: pytest.MonkeyPatch) -> Iterator[Conveyor]:
    monkeypatch.setenv("CONVEYOR_URL", backend_url)
    monkeypatch.setenv("SEAMS_DIR", str(tmp_path))
    seams_app.app.use(backend_url)
    yield seams_app.app
    seams_app.app.close()


def journal(tmp_path: Path) -> list[str]:
    path = tmp_path / "journal"
    return path.read_text().splitlines() if path.exists() else []
