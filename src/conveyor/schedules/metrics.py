"""The schedules' gauges and counters for /metrics, read from the backend at scrape time
(the counters are kept with each schedule, so every serving process reports the same):

    conveyor_schedule_seconds_since_success{schedule}   since its last run completed
                                                        (since it was created, before one)
    conveyor_schedule_interval_seconds{schedule}        between its next two ticks
    conveyor_schedule_paused{schedule}                  1 while paused
    conveyor_schedule_ticks_enqueued_total{schedule}
    conveyor_schedule_ticks_skipped_total{schedule,reason}   overlap | misfire | expired

"A schedule has not completed a run for 2 intervals" is the example alert in
deploy/prometheus/alerts.yml.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..backends.base import Backend
from ..backends.schedules import ScheduleRecord
from .spec import ScheduleSpec


class ScheduleMetrics(Collector):
    def __init__(self) -> None:
        self.records: list[ScheduleRecord] = []
        self.now = 0

    async def refresh(self, backend: Backend) -> None:
        self.now = await backend.now()
        self.records = await backend.schedules()

    def collect(self) -> Iterable[Metric]:
        since = GaugeMetricFamily("conveyor_schedule_seconds_since_success",
                                  "Seconds since the schedule's last run completed "
                                  "(since it was created, before one did).",
                                  labels=("schedule",))
        interval = GaugeMetricFamily("conveyor_schedule_interval_seconds",
                                     "Seconds between the schedule's next two ticks.",
                                     labels=("schedule",))
        paused = GaugeMetricFamily("conveyor_schedule_paused", "1 while the schedule is "
                                   "paused.", labels=("schedule",))
        enqueued = CounterMetricFamily("conveyor_schedule_ticks_enqueued",
                                       "Ticks whose job the scheduler enqueued.",
                                       labels=("schedule",))
        skipped = CounterMetricFamily("conveyor_schedule_ticks_skipped",
                                      "Ticks not run: held back by the overlap policy, "
                                      "dropped by the misfire policy, or expired unstarted.",
                                      labels=("schedule", "reason"))
        for r in self.records:
            label = (r.name,)
            success = r.last_success_at or r.created_at or self.now
            since.add_metric(label, max(self.now - success, 0) / 1000)
            gap = _interval_ms(r)
            if gap is not None:
                interval.add_metric(label, gap / 1000)
            paused.add_metric(label, 1.0 if r.paused else 0.0)
            enqueued.add_metric(label, r.enqueued)
            for reason, count in (("overlap", r.skipped_overlap),
                                  ("misfire", r.skipped_misfire), ("expired", r.expired)):
                skipped.add_metric((r.name, reason), count)
        return [since, interval, paused, enqueued, skipped]


def _interval_ms(record: ScheduleRecord) -> int | None:
    timing = ScheduleSpec.from_record(record).timing
    if timing.every_ms is not None:
        return timing.every_ms
    if record.next_run_at is None:
        return None
    after = timing.next_after(record.next_run_at)
    return None if after is None else after - record.next_run_at
