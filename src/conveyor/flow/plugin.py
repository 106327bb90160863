"""The flow-control plugin: installed by the app's first limit declaration, it gives the
metrics plugin its gauges (flow/metrics.py). The routes and pages live with the HTTP API
(http/limits.py) and the dashboard (dashboard/limits.py), present in every app."""

from __future__ import annotations

from typing import Any

from ..plugins import Plugin


class FlowPlugin(Plugin):
    name = "conveyor.flow"

    def metrics_collector(self) -> Any:
        from .metrics import FlowMetrics

        return FlowMetrics()
