"""Prometheus metrics for one app, in base units, correct however many workers run.

    metrics = app.install(Metrics())   # `conveyor serve` does this; GET /metrics renders it
    text = await metrics.render()      # the Prometheus text exposition format

Gauges are read from the backend at scrape time:

    conveyor_queue_jobs{queue,state}                jobs per state (dead letters: failed)
    conveyor_queue_oldest_waiting_seconds{queue}    age of the oldest due, unclaimed job
    conveyor_queue_paused{queue}                    1 while the queue is paused
    conveyor_workers{queue}                         workers seen within `live_within` s
    conveyor_build_info{version,python,backend}     always 1

Counters and histograms are computed from the backend's event stream by the process that
serves them, so they count the work of every worker process on every machine, including
jobs rescued from a worker that was killed, and need no multiprocess mode:

    conveyor_jobs_finished_total{queue,task,outcome}   completed | failed | cancelled
    conveyor_job_duration_seconds{queue,task}          run time: last start -> end
    conveyor_job_wait_seconds{queue,task}              due -> start of the last attempt
    conveyor_webhook_deliveries_total{outcome}         delivered | retrying | failed |
                                                       gone | refused (per attempt/end)

They count from the moment this process started following (the stream's head at the
first scrape): like any Prometheus counter they start at zero and `rate()` handles
restarts. Wait time starts when the job is due, not when it was enqueued, so a deliberate
delay or a retry's backoff is not counted as waiting (for a job enqueued to run now, due
= enqueued). Both histograms are observed when the job finishes.

Every serving process follows the whole stream, so several `conveyor serve` replicas
report the same totals: aggregate them with ``max without(instance)``, not ``sum``.
Labels are queue, task, state and outcome, never a job id.
"""

from __future__ import annotations

import asyncio
import platform
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from . import __version__, webhooks
from .backends.base import Backend, JobFilter, QueueInfo, WorkerInfo
from .jobs import Event, Job, JobState
from .plugins import Plugin

if TYPE_CHECKING:
    from .app import Conveyor

FINAL = frozenset({JobState.COMPLETED.value, JobState.FAILED.value, JobState.CANCELLED.value})
RETRY_KINDS = frozenset({JobState.WAITING.value, JobState.DELAYED.value})
DELIVERY_OUTCOMES = ("delivered", "retrying", "failed", "gone", "refused")
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
           300.0, 600.0, 1800.0, 3600.0, float("inf"))
_PAGE = 500
_CATCH_UP_BUDGET = 2.0  # seconds one scrape may spend reading events; the rest waits


class Metrics(Plugin):
    """The metrics plugin: the metrics of one app, for one serving process."""

    name = "conveyor.metrics"
    router_prefix = ""  # GET /metrics, where Prometheus looks by default

    def __init__(self, *, live_within: float = 30.0) -> None:
        self.live_within = live_within
        self.registry = CollectorRegistry(auto_describe=True)
        self.finished = Counter("conveyor_jobs_finished", "Jobs that reached a final state.",
                                ("queue", "task", "outcome"), registry=self.registry)
        self.duration = Histogram("conveyor_job_duration_seconds",
                                  "Run time of a job's last attempt, start to end.",
                                  ("queue", "task"), buckets=BUCKETS, registry=self.registry)
        self.wait = Histogram("conveyor_job_wait_seconds",
                              "Time a due job waited for a worker (due -> start).",
                              ("queue", "task"), buckets=BUCKETS, registry=self.registry)
        self.deliveries = Counter("conveyor_webhook_deliveries",
                                  "Webhook delivery attempts and their ends, by outcome.",
                                  ("outcome",), registry=self.registry)
        for outcome in DELIVERY_OUTCOMES:  # zeros from the start, so alerts can use rate()
            self.deliveries.labels(outcome)
        self._snapshot = _Snapshot()
        self.registry.register(self._snapshot)
        self.cursor: int | None = None
        self._lock: asyncio.Lock | None = None

    def setup(self, app: Conveyor) -> None:
        self.app = app
        self._snapshot.backend = app.url.split(":", 1)[0]

    def router(self) -> Any:
        from .http.metrics import router

        return router

    async def render(self) -> bytes:
        """Catch up with the event stream, read the gauges, and format everything."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            await self.app.aopen()
            backend = self.app.backend
            await self.follow(backend)
            now = await backend.now()
            self._snapshot.update(await backend.queues(), await backend.workers(), now,
                                  self.live_within)
            return generate_latest(self.registry)

    # -- the event stream -------------------------------------------------------------------
    async def follow(self, backend: Backend) -> None:
        if self.cursor is None:
            self.cursor = await stream_head(backend)
            return
        deadline = time.monotonic() + _CATCH_UP_BUDGET
        while time.monotonic() < deadline:
            events = await backend.events(after=self.cursor, limit=_PAGE)
            if not events:
                return
            await self.observe(backend, events)
            self.cursor = events[-1].id
            if len(events) < _PAGE:
                return

    async def observe(self, backend: Backend, events: Sequence[Event]) -> None:
        for event in events:
            if event.queue == webhooks.QUEUE and event.kind in RETRY_KINDS \
                    and "error" in event.data:
                self.deliveries.labels("retrying").inc()
        final = [e for e in events if e.kind in FINAL]
        if not final:
            return
        jobs = await _jobs(backend, [e.job_id for e in final])
        for event in final:
            job = jobs.get(event.job_id)
            if job is None:  # removed before we looked: count it, time nothing
                self.finished.labels(event.queue, "unknown", event.kind).inc()
                continue
            self.finished.labels(job.queue, job.task, event.kind).inc()
            if job.started_at is not None:
                end = job.finished_at or event.at
                self.duration.labels(job.queue, job.task).observe(
                    max(end - job.started_at, 0) / 1000)
                self.wait.labels(job.queue, job.task).observe(
                    max(job.started_at - job.scheduled_at, 0) / 1000)
            if job.task == webhooks.DELIVERY_TASK:
                outcome = webhooks.delivery_outcome(job)
                if outcome is not None:
                    self.deliveries.labels(outcome).inc()


async def _jobs(backend: Backend, ids: Iterable[str]) -> dict[str, Job]:
    unique = tuple(dict.fromkeys(ids))
    found: dict[str, Job] = {}
    for start in range(0, len(unique), _PAGE):
        chunk = unique[start:start + _PAGE]
        page = await backend.list_jobs(JobFilter(ids=chunk), limit=len(chunk))
        found.update((j.id, j) for j in page.jobs)
    return found


async def stream_head(backend: Backend) -> int:
    """The id of the newest event (0 if none), found with a few dozen cheap reads: ids
    only grow, but they may be sparse (Redis uses time-based ids)."""
    first = await backend.events(after=0, limit=1)
    if not first:
        return 0
    low = first[0].id  # an existing id: the head is at least this
    step = 1
    while True:  # gallop until nothing lies beyond `high`
        high = low + step
        ahead = await backend.events(after=high, limit=1)
        if not ahead:
            break
        low = ahead[0].id
        step *= 2
    while low < high:  # the head is in [low, high]
        middle = (low + high) // 2
        ahead = await backend.events(after=middle, limit=1)
        if ahead:
            low = ahead[0].id
        else:
            high = middle
    return low


class _Snapshot(Collector):
    """The gauges, from the last backend reading (taken just before each render)."""

    def __init__(self) -> None:
        self.backend = ""
        self.queues: list[QueueInfo] = []
        self.workers: list[WorkerInfo] = []
        self.now = 0
        self.live_within = 30.0

    def update(self, queues: list[QueueInfo], workers: list[WorkerInfo], now: int,
               live_within: float) -> None:
        self.queues, self.workers, self.now, self.live_within = queues, workers, now, \
            live_within

    def collect(self) -> Iterable[Metric]:
        jobs = GaugeMetricFamily("conveyor_queue_jobs", "Jobs per queue and state.",
                                 labels=("queue", "state"))
        oldest = GaugeMetricFamily("conveyor_queue_oldest_waiting_seconds",
                                   "Age of the oldest waiting (due, unclaimed) job; 0 if none.",
                                   labels=("queue",))
        paused = GaugeMetricFamily("conveyor_queue_paused", "1 while the queue is paused.",
                                   labels=("queue",))
        names = {q.name for q in self.queues}
        for queue in self.queues:
            for state in JobState:
                jobs.add_metric((queue.name, state.value), queue.counts.get(state, 0))
            age = 0.0 if queue.oldest_waiting_at is None \
                else max(self.now - queue.oldest_waiting_at, 0) / 1000
            oldest.add_metric((queue.name,), age)
            paused.add_metric((queue.name,), 1.0 if queue.paused else 0.0)
        live = GaugeMetricFamily("conveyor_workers", "Live workers consuming each queue.",
                                 labels=("queue",))
        counts = dict.fromkeys(sorted(names), 0)
        for worker in self.workers:
            seen = worker.last_seen_at or 0
            if self.now - seen <= self.live_within * 1000:
                for name in worker.queues:
                    counts[name] = counts.get(name, 0) + 1
        for name, count in sorted(counts.items()):
            live.add_metric((name,), count)
        info = GaugeMetricFamily("conveyor_build_info", "conveyor's version; always 1.",
                                 labels=("version", "python", "backend"))
        info.add_metric((__version__, platform.python_version(), self.backend), 1)
        return [jobs, oldest, paused, live, info]
