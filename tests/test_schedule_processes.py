"""Real `conveyor worker` processes as schedulers on one store (SQLite, Redis): every tick
of a 1 s interval and of a per-second cron runs exactly once with 2 or 3 of them, and
when the leader is killed with SIGKILL the next one goes on without a duplicate or a gap.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import Conveyor
from tests.helpers import ROOT, wait_until
from tests.redis_server import RedisServer, redis_server, unique_url  # noqa: F401 (a session fixture)

pytestmark = pytest.mark.slow
SCHEDULES = ("every-second", "per-second-cron")


class Scheduler:
    """A worker process of tests/schedule_app.py (its keeper runs the scheduler)."""

    def __init__(self, url: str, ledger: Path) -> None:
        env = {**os.environ, "CONVEYOR_URL": url, "SCHEDULE_LEDGER": str(ledger),
               "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "conveyor", "worker", "tests.schedule_app:app",
             "--grace", "1"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(params=["sqlite", "redis"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/schedules.db"
    server: RedisServer = request.getfixturevalue("redis_server")
    return unique_url(server)


@pytest.fixture
def schedulers() -> Iterator[list[Scheduler]]:
    started: list[Scheduler] = []
    yield started
    for s in started:
        s.stop()


def ledger(path: Path) -> dict[str, list[int]]:
    """Tick times (ms) run per schedule; a repeated tick appears twice."""
    out: dict[str, list[int]] = {name: [] for name in SCHEDULES}
    if path.exists():
        for line in path.read_text().splitlines():
            name, tick, _ = line.split()
            out[name].append(round(dt.datetime.fromisoformat(tick).timestamp() * 1000))
    return out


def spans(path: Path, seconds: int) -> bool:
    ticks = ledger(path)
    return all(len(set(t)) > seconds for t in ticks.values())


def assert_once_without_gaps(path: Path) -> None:
    for name, ticks in ledger(path).items():
        repeated = [t for t, n in Counter(ticks).items() if n > 1]
        assert repeated == [], f"{name}: ticks run twice: {repeated}"
        ordered = sorted(ticks)
        gaps = [(a, b) for a, b in itertools.pairwise(ordered) if b - a != 1000]
        assert gaps == [], f"{name}: missing ticks between {gaps}"


def start(schedulers: list[Scheduler], n: int, url: str, path: Path) -> None:
    schedulers.extend(Scheduler(url, path) for _ in range(n))


@pytest.mark.parametrize("processes", [2, 3])
def test_every_tick_runs_once_with_several_schedulers(url: str, tmp_path: Path,
                                                      schedulers: list[Scheduler],
                                                      processes: int) -> None:
    path = tmp_path / "ledger"
    start(schedulers, processes, url, path)
    wait_until(lambda: spans(path, 5), 40, "five ticks of each schedule")
    for s in schedulers:
        s.stop()
    assert_once_without_gaps(path)


def test_a_killed_leader_is_followed_without_duplicate_or_gap(url: str, tmp_path: Path,
                                                               schedulers: list[Scheduler]
                                                               ) -> None:
    path = tmp_path / "ledger"
    start(schedulers, 2, url, path)
    wait_until(lambda: spans(path, 2), 40, "the first ticks")
    owner = _leader_pid(url)
    victim = next(s for s in schedulers if s.proc.pid == owner)
    victim.proc.kill()  # SIGKILL: its lock has to expire before the other one leads
    victim.proc.wait()
    killed_at = max(ledger(path)["every-second"])
    wait_until(lambda: max(ledger(path)["every-second"]) >= killed_at + 8000, 40,
               "ticks fired by the next leader")
    for s in schedulers:
        s.stop()
    assert_once_without_gaps(path)


def _leader_pid(url: str) -> int:
    """The pid of the worker that holds the maintenance lock (runs the scheduler)."""
    app = Conveyor(url)
    try:
        app.open()
        workers = app.run_sync(app.backend.workers)
    finally:
        app.close()
    holder = _lock_owner(url)
    return next(w.pid for w in workers if w.id == holder)


def _lock_owner(url: str) -> str:
    if url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return str(conn.execute(
                "SELECT owner FROM locks WHERE name = 'maintenance'").fetchone()[0])
    import redis
    from conveyor.backends.redis.connect import parse_url

    settings = parse_url(url)
    client = redis.Redis.from_url(settings.url, decode_responses=True)
    try:
        return str(client.get(f"{settings.prefix}:{{g}}:lock:maintenance"))
    finally:
        client.close()
