"""Prometheus gauges of flow control, for the metrics plugin (conveyor/metrics.py), which
calls `refresh(backend)` before each render of the queue-wide families:

    conveyor_flow_blocked_jobs{queue,limiter,key}       waiting jobs the claim last found
                                                        held back by the limiter's limits
    conveyor_flow_active_jobs{queue,limiter,key}        jobs running through it (slots taken)
    conveyor_flow_limit_concurrency{queue,limiter}      the cap in force
    conveyor_flow_limit_rate_per_second{queue,limiter}  the rate in force, starts per second

Cardinality is bounded whatever the number of keys (tenants): per limiter, the `TOP_KEYS`
keys with the most blocked (or active) jobs get a series each and the rest are summed
under key="~other", which is always present (0 when nothing is left), so a limiter adds
at most TOP_KEYS + 1 series to each family. key="" is the limiter's shared budget. No
label is ever a job id.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..backends.base import Backend, LimitInfo
from .spec import Limit

TOP_KEYS = 20
OTHER = "~other"


def top_keys(counts: dict[str, int], n: int = TOP_KEYS) -> list[tuple[str, int]]:
    """The `n` largest counts (ties by key), then OTHER with the sum of the rest."""
    ranked = sorted(((k, v) for k, v in counts.items() if v), key=lambda kv: (-kv[1], kv[0]))
    return [*ranked[:n], (OTHER, sum(v for _, v in ranked[n:]))]


class FlowMetrics(Collector):
    """The gauges, from the last `backend.limits()` reading."""

    def __init__(self) -> None:
        self.limits: list[LimitInfo] = []

    async def refresh(self, backend: Backend) -> None:
        self.limits = await backend.limits()

    def collect(self) -> Iterable[Metric]:
        labels = ("queue", "limiter", "key")
        blocked = GaugeMetricFamily("conveyor_flow_blocked_jobs",
                                    "Waiting jobs the claim last found held back by the "
                                    f"limiter (top {TOP_KEYS} keys, the rest as ~other).",
                                    labels=labels)
        active = GaugeMetricFamily("conveyor_flow_active_jobs",
                                   "Jobs running through the limiter (concurrency slots "
                                   f"taken; top {TOP_KEYS} keys, the rest as ~other).",
                                   labels=labels)
        cap = GaugeMetricFamily("conveyor_flow_limit_concurrency",
                                "The limiter's concurrency cap in force.",
                                labels=("queue", "limiter"))
        rate = GaugeMetricFamily("conveyor_flow_limit_rate_per_second",
                                 "The limiter's rate in force, in starts per second.",
                                 labels=("queue", "limiter"))
        for info in self.limits:
            where = (info.queue, info.name)
            for key, n in top_keys(info.blocked):
                blocked.add_metric((*where, key), n)
            for key, n in top_keys({u.key: u.active for u in info.use}):
                active.add_metric((*where, key), n)
            _limits(info.effective, where, cap, rate)
        return [blocked, active, cap, rate]


def _limits(effective: dict[str, Any] | None, where: tuple[str, str],
            cap: GaugeMetricFamily, rate: GaugeMetricFamily) -> None:
    limit = Limit.from_json(effective)
    if limit.concurrency is not None:
        cap.add_metric(where, limit.concurrency)
    if limit.rate is not None:
        rate.add_metric(where, limit.rate.count * 1000 / limit.rate.window_ms)
