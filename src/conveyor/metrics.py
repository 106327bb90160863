"""Prometheus metrics for one app, in base units, correct however many workers run.

    metrics = app.install(Metrics())   # `conveyor serve` does this; GET /metrics renders it
    text = await metrics.render()      # the Prometheus text exposition format

Queue-wide gauges are read from the backend at scrape time:

    conveyor_queue_jobs{queue,state}                jobs per state (dead letters: failed)
    conveyor_queue_oldest_waiting_seconds{queue}    age of the oldest due, unclaimed job
    conveyor_queue_paused{queue}                    1 while the queue is paused
    conveyor_workers{queue}                         workers seen within `live_within` s
    conveyor_worker_slots{state}                    job slots of those workers: busy | free

Queue-wide counters and histograms are computed from the backend's event stream by the
process that serves them, so they count the work of every worker process on every machine,
including jobs rescued from a worker that was killed, and need no multiprocess mode:

    conveyor_jobs_enqueued_total{queue,task}           jobs stored by an enqueue (any producer)
    conveyor_jobs_retried_total{queue,task}            attempts that failed or stalled and
                                                       will run again
    conveyor_jobs_finished_total{queue,task,outcome}   completed | failed | cancelled
    conveyor_job_duration_seconds{queue,task}          run time: last start -> end
    conveyor_job_wait_seconds{queue,task}              due -> start of the last attempt
    conveyor_webhook_deliveries_total{outcome}         delivered | retrying | failed |
                                                       gone | refused (per attempt/end)

They count from the moment this process started reporting, which is the server's start-up
when no other replica reports then (`start_up`), not the first scrape: like any Prometheus counter
they start at zero and `rate()` handles restarts. Wait time starts when the job is due, not
when it was enqueued, so a deliberate delay or a retry's backoff is not counted as waiting
(for a job enqueued to run now, due = enqueued). Both histograms are observed when the job
finishes. No counter or histogram has a ``_created`` series.

Per process, in every serving process: ``process_*`` (CPU, memory, open files),
``python_info``, ``python_gc_*``, ``conveyor_build_info{version,python,backend}`` and
``conveyor_metrics_reporter``.

Several `conveyor serve` replicas: exactly one of them, the holder of the backend lock
"conveyor.metrics.reporter" (renewed on each scrape, taken over by another replica's scrape
when it lapses for `reporter_ttl` seconds), reports the queue-wide families above and shows
``conveyor_metrics_reporter 1``; the others report only their per-process families. So the
usual panels are right with one replica or ten: ``sum by (queue) (rate(
conveyor_jobs_finished_total[5m]))``, ``sum by (queue) (conveyor_queue_jobs{state="waiting"})``
(``max`` gives the same). Keep `reporter_ttl` above the scrape interval. The reporter's
counters restart at zero when another replica takes over, which `rate()` reads as a reset.
Labels are queue, task, state and outcome, never a job id.
"""

from __future__ import annotations

import asyncio
import os
import platform
import socket
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from . import __version__, webhooks
from .backends.base import Backend, QueueInfo, WorkerInfo
from .jobs import Event, Job, JobState
from .plugins import Plugin
from .stream import EventStream

if TYPE_CHECKING:
    from .app import Conveyor

FINAL = frozenset({JobState.COMPLETED.value, JobState.FAILED.value, JobState.CANCELLED.value})
RETRY_KINDS = frozenset({JobState.WAITING.value, JobState.DELAYED.value})
ENQUEUE_KINDS = frozenset(s.value for s in JobState if s.value not in FINAL
                          and s is not JobState.ACTIVE)
REPORTER_LOCK = "conveyor.metrics.reporter"
DELIVERY_OUTCOMES = ("delivered", "retrying", "failed", "gone", "refused")
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
           300.0, 600.0, 1800.0, 3600.0, float("inf"))
_PAGE = 500
_CATCH_UP_BUDGET = 2.0  # seconds one scrape may spend reading events; the rest waits


class Metrics(Plugin):
    """The metrics plugin: the metrics of one app, for one serving process."""

    name = "conveyor.metrics"
    router_prefix = ""  # GET /metrics, where Prometheus looks by default

    def __init__(self, *, live_within: float = 30.0, reporter_ttl: float = 120.0) -> None:
        self.live_within = live_within
        self.reporter_ttl = reporter_ttl
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.reporting = False
        self.local = _WithoutCreated(auto_describe=True)  # this process: always reported
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=self.local)
        self.build_info = Gauge("conveyor_build_info", "conveyor's version; always 1.",
                                ("version", "python", "backend"), registry=self.local)
        self.reporter = Gauge("conveyor_metrics_reporter",
                              "1 in the one serving process that reports the queue-wide "
                              "metrics, 0 in the others.", registry=self.local)
        self.registry = _WithoutCreated(auto_describe=True)  # queue-wide: the reporter's
        self.enqueued = Counter("conveyor_jobs_enqueued", "Jobs stored by an enqueue.",
                                ("queue", "task"), registry=self.registry)
        self.retried = Counter("conveyor_jobs_retried",
                               "Attempts that failed or stalled and will run again.",
                               ("queue", "task"), registry=self.registry)
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
        self._snapshot = _Snapshot()
        self.registry.register(self._snapshot)
        self.cursor: int | None = None
        self._lock: asyncio.Lock | None = None
        self._extra: dict[str, Any] = {}

    def setup(self, app: Conveyor) -> None:
        self.app = app
        self.build_info.labels(__version__, platform.python_version(),
                               app.url.split(":", 1)[0]).set(1)

    def router(self) -> Any:
        from .http.metrics import router

        return router

    async def render(self) -> bytes:
        """Take or renew the reporter lock; as the reporter, catch up with the event stream
        and read the gauges. Format this process's families, and the queue-wide ones if
        it reports them."""
        async with self._locked():
            await self.app.aopen()
            backend = self.app.backend
            reporting = await backend.try_lock(REPORTER_LOCK, self.owner,
                                               int(self.reporter_ttl * 1000))
            if reporting and not self.reporting:
                self._start_reporting()
            self.reporting = reporting
            self.reporter.set(1 if reporting else 0)
            if not reporting:
                return generate_latest(self.local)
            await self.follow(backend)
            now = await backend.now()
            self._snapshot.update(await backend.queues(), await backend.workers(), now,
                                  self.live_within)
            for extra in self._plugin_collectors():
                await extra.refresh(backend)
            return generate_latest(self.local) + generate_latest(self.registry)

    async def start_up(self) -> None:
        """At the server's start-up: report from now on unless another replica does, so
        counters count from the process's start, not from the first scrape (a scrape
        within `reporter_ttl` keeps the lock; a later one takes it again if still free)."""
        async with self._locked():
            await self.app.aopen()
            backend = self.app.backend
            if await backend.try_lock(REPORTER_LOCK, self.owner, int(self.reporter_ttl * 1000)):
                self._start_reporting()
                self.reporting = True
                self.reporter.set(1)
                self.cursor = await EventStream(backend, page=_PAGE).head()

    def _locked(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    def _start_reporting(self) -> None:
        """Counters start from zero at the stream's head: whatever happened while another
        replica reported (or none did) is that replica's count, not ours."""
        for family in (self.enqueued, self.retried, self.finished, self.duration, self.wait,
                       self.deliveries):
            family.clear()
        for outcome in DELIVERY_OUTCOMES:  # zeros from the start, so alerts can use rate()
            self.deliveries.labels(outcome)
        self.cursor = None

    def _plugin_collectors(self) -> list[Any]:
        """Collectors of other plugins (``metrics_collector()``, with an async
        ``refresh(backend)`` called before each render), registered on first sight."""
        for plugin in self.app.plugins:
            if plugin.name in self._extra:
                continue
            collector = plugin.metrics_collector()
            if collector is not None:
                self._extra[plugin.name] = collector
                self.registry.register(collector)
        return list(self._extra.values())

    # -- the event stream -------------------------------------------------------------------
    async def follow(self, backend: Backend) -> None:
        stream = EventStream(backend, page=_PAGE)
        if self.cursor is None:
            self.cursor = await stream.head()
            return
        async for events in stream.follow(self.cursor, budget=_CATCH_UP_BUDGET):
            await self.observe(stream, events)
            self.cursor = events[-1].id

    async def observe(self, stream: EventStream, events: Sequence[Event]) -> None:
        for event in events:
            if event.queue == webhooks.QUEUE and _is_retry(event):
                self.deliveries.labels("retrying").inc()
        counted = [e for e in events if e.kind in FINAL or _is_retry(e) or _may_be_enqueue(e)]
        if not counted:
            return
        jobs = await stream.jobs_of(counted)
        for event in counted:
            job = jobs.get(event.job_id)
            task = job.task if job is not None else "unknown"  # removed before we looked
            if event.kind in FINAL:
                self.finished.labels(event.queue, task, event.kind).inc()
                if job is not None:
                    self._observe_final(job, event)
            elif _is_retry(event):
                self.retried.labels(event.queue, task).inc()
            elif job is None or job.created_at == event.at:
                # a delayed job's promotion is another attempt-0 event, later than creation
                self.enqueued.labels(event.queue, task).inc()

    def _observe_final(self, job: Job, event: Event) -> None:
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


def _is_retry(event: Event) -> bool:
    """An attempt failed (or its worker vanished) and the job goes back to run again."""
    return event.kind in RETRY_KINDS and "error" in event.data


def _may_be_enqueue(event: Event) -> bool:
    """The first event of a job, or a later step that has not started any attempt (a
    delayed job's promotion): which one, the job's creation time tells."""
    return event.kind in ENQUEUE_KINDS and event.data.get("attempt") == 0 \
        and "error" not in event.data


class _WithoutCreated(CollectorRegistry):
    """A registry whose exposition leaves out the ``_created`` samples prometheus_client
    adds to every counter and histogram child: one more series each that no panel or
    alert uses (the process-wide `disable_created_metrics` would change the user's own
    metrics too)."""

    def collect(self) -> Iterator[Metric]:
        for metric in super().collect():
            metric.samples = [s for s in metric.samples if not s.name.endswith("_created")]
            yield metric


class _Snapshot(Collector):
    """The gauges, from the last backend reading (taken just before each render)."""

    def __init__(self) -> None:
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
        slots = GaugeMetricFamily("conveyor_worker_slots",
                                  "Job slots of live workers: busy (running a job) or free.",
                                  labels=("state",))
        counts = dict.fromkeys(sorted(names), 0)
        busy = free = 0
        for worker in self.workers:
            seen = worker.last_seen_at or 0
            if self.now - seen <= self.live_within * 1000:
                for name in worker.queues:
                    counts[name] = counts.get(name, 0) + 1
                busy += worker.in_flight
                free += max(worker.concurrency - worker.in_flight, 0)
        for name, count in sorted(counts.items()):
            live.add_metric((name,), count)
        slots.add_metric(("busy",), busy)
        slots.add_metric(("free",), free)
        return [jobs, oldest, paused, live, slots]
