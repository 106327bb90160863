"""SQLite on a disk that fills up or turns read-only: every error is a ConveyorError that
says so, the HTTP API answers 503 problem+json, the worker keeps trying to record
outcomes, and nothing that was accepted is lost or run twice.

The store lives on a small tmpfs mounted for the test (the tests run as root in CI); where
mounting is not permitted the tests skip, saying why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from conveyor import Conveyor, JobState, Worker
from conveyor.backends.base import JobFilter
from conveyor.errors import BackendUnavailableError, StorageFullError
from conveyor.http import HttpSettings, Scope, create_app

TOKEN = "disk-faults-admin"
_ALL = JobFilter()
PAYLOAD = "x" * 2000


class Disk:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.url = f"sqlite:///{folder}/jobs.db"

    def fill(self, leave: int = 0) -> Path:
        """Take the free space but `leave` bytes with a filler file (unlink it to free
        the space again)."""
        filler = self.folder / f"filler-{len(list(self.folder.glob('filler-*')))}"
        stat = os.statvfs(self.folder)
        size = max(stat.f_bavail * stat.f_frsize - leave, 0)
        with contextlib.suppress(OSError), open(filler, "wb") as out:
            out.write(b"\0" * size)
            out.write(b"\0" * 65536)  # rounding: a little more, until ENOSPC
        assert filler.exists()
        return filler

    def remount(self, options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", str(self.folder)], check=True,
                       capture_output=True)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Disk]:
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs needs root: {mounted.stderr.strip()}")
    try:
        yield Disk(folder)
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def make_app(url: str) -> Conveyor:
    app = Conveyor(url)

    @app.task(expose=True)
    async def store(text: str) -> int:
        return len(text)

    return app


def http(app: Conveyor) -> httpx.AsyncClient:
    api = create_app(app, HttpSettings(tokens={TOKEN: Scope.ADMIN}))
    return httpx.AsyncClient(transport=httpx.ASGITransport(api), base_url="http://api",
                             headers={"Authorization": f"Bearer {TOKEN}"})


def test_a_full_disk_refuses_with_storage_full_and_keeps_what_was_accepted(disk: Disk
                                                                          ) -> None:
    app = make_app(disk.url)
    app.open()
    filler = disk.fill(leave=400_000)  # the store holds a hundred or so of these
    accepted: list[str] = []
    try:
        with pytest.raises(StorageFullError, match="disk is full"):
            for _ in range(10_000):
                accepted.append(app.get_task("store").enqueue(PAYLOAD).id)
        assert accepted
        assert all(app.get_job(i).job.state is JobState.WAITING for i in accepted)
        filler.unlink()  # room again: accepted again
        accepted.append(app.get_task("store").enqueue("after").id)
        listed = app.run_sync(app.backend.list_jobs, _ALL, 1000).jobs
        assert sorted(j.id for j in listed) == sorted(accepted)
    finally:
        app.close()


async def test_the_http_api_answers_503_problem_json_on_a_full_disk(disk: Disk) -> None:
    app = make_app(disk.url)
    await app.aopen()
    try:
        disk.fill()
        async with http(app) as client:
            answer = await client.post("/v1/tasks/store/jobs", json={"kwargs": {"text": PAYLOAD}})
            assert answer.status_code == 503
            assert answer.headers["content-type"].startswith("application/problem+json")
            assert "disk is full" in answer.json()["detail"]
            assert answer.headers["retry-after"]
        assert (await app.backend.list_jobs(where=_ALL)).jobs == []
    finally:
        await app.aclose()


async def test_a_worker_keeps_trying_to_record_outcomes_until_the_disk_has_room(
        disk: Disk, caplog: pytest.LogCaptureFixture) -> None:
    app = make_app(disk.url)
    release = asyncio.Event()
    runs: list[int] = []

    @app.task
    async def slow(n: int) -> str:
        runs.append(n)
        await release.wait()
        return str(n) * 100_000  # an outcome that needs fresh room in the WAL

    await app.aopen()
    handles = await app.aenqueue_many([slow.prepare(n) for n in range(5)])
    worker = Worker(app, ["default"], concurrency=5, lease=30.0, poll_interval=0.05)
    running = asyncio.ensure_future(worker.run())
    filler = None
    try:
        await until(lambda: len(runs) == 5)
        filler = disk.fill()
        caplog.set_level(logging.ERROR, logger="conveyor")
        release.set()  # every job finishes while nothing can be written
        # the outcomes ride on the worker's next claim call (or its own settle call): either
        # way the error is logged as the full disk it is, and retried
        await until(lambda: any("StorageFullError" in r.getMessage()
                                and "disk is full" in r.getMessage() for r in caplog.records))
        for h in handles:
            job = await app.backend.get(h.id)
            assert job is not None and job.state is JobState.ACTIVE
        filler.unlink()
        for n, h in enumerate(handles):
            assert await h.aresult(timeout=20) == str(n) * 100_000
    finally:
        if filler is not None:
            filler.unlink(missing_ok=True)
        worker.stop()
        await running
        await app.aclose()
    assert sorted(runs) == [0, 1, 2, 3, 4]  # each ran once


async def until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


async def test_a_read_only_disk_makes_the_backend_unavailable_then_recovers(disk: Disk
                                                                           ) -> None:
    app = make_app(disk.url)
    [kept] = await app.aenqueue_many([app.get_task("store").prepare("before")])
    await app.aclose()
    disk.remount("ro")
    try:
        again = make_app(disk.url)
        with pytest.raises(BackendUnavailableError, match=r"read-only|cannot be opened"):
            await again.aenqueue_many([again.get_task("store").prepare("during")])
        async with http(make_app(disk.url)) as client:
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.headers["content-type"].startswith("application/problem+json")
            refused = await client.post("/v1/tasks/store/jobs", json={"kwargs": {"text": "during"}})
            assert refused.status_code == 503
    finally:
        disk.remount("rw")
    after = make_app(disk.url)
    await after.aopen()
    try:
        assert [j.id for j in (await after.backend.list_jobs(where=_ALL)).jobs] == [kept.id]
    finally:
        await after.aclose()

