"""The schedules plugin ("conveyor.schedules"): how schedules attach to an app.

Installed by the first ``@app.cron`` / ``app.schedule`` / ``app.schedules`` use, or by
``conveyor.schedules.enable(app)`` in an app that only manages schedules at runtime (so
its HTTP service has ``/v1/schedules`` and its dashboard the Schedules page). It brings:

- the scheduler, a leader duty (runner.py);
- a worker start hook that upserts this app's declarations by name, so a deploy's new
  workers put its schedules in place as they start (an old worker that takes the lead
  later does not put old ones back: only starting processes write declarations);
- the HTTP routes (http.py) and, for the metrics plugin, the schedule gauges (metrics.py).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..backends import backend_for
from ..plugins import LeaderDuty, Plugin
from .api import Schedules
from .runner import Scheduler

if TYPE_CHECKING:
    from ..app import Conveyor

log = logging.getLogger("conveyor.schedules")


class SchedulesPlugin(Plugin):
    name = "conveyor.schedules"

    def __init__(self) -> None:
        self.scheduler = Scheduler()
        self._schedules: Schedules | None = None

    @property
    def schedules(self) -> Schedules:
        assert self._schedules is not None, "install the plugin first: app.install(...)"
        return self._schedules

    def setup(self, app: Conveyor) -> None:
        self.app = app
        self._schedules = Schedules(app)
        app.on_worker_start(self.store_declared)

    def leader_duties(self) -> Sequence[LeaderDuty]:
        return [self.scheduler]

    async def store_declared(self) -> None:
        """Upsert the declarations on a connection of its own (start hooks also run in
        process children, on a loop that ends with the hook). A failure is logged, not
        raised: the stored schedules keep firing."""
        backend = backend_for(self.app.url)
        try:
            await backend.open()
            report = await self.schedules.astore_declared(backend)
        except Exception as exc:
            log.error("could not store the declared schedules: %s", exc)
            return
        finally:
            await backend.close()
        if report.created or report.updated or report.retired:
            log.info("schedules: %d created, %d updated, %d retired", len(report.created),
                     len(report.updated), len(report.retired))

    def router(self) -> Any:
        from .http import router

        return router

    def metrics_collector(self) -> Any:
        """The schedule gauges, for the metrics plugin (metrics.py)."""
        from .metrics import ScheduleMetrics

        return ScheduleMetrics()


def enable(app: Conveyor) -> SchedulesPlugin:
    """Install the schedules plugin in `app` (once; later calls return it)."""
    plugin = app.plugin(SchedulesPlugin.name)
    if plugin is None:
        plugin = app.install(SchedulesPlugin())
    assert isinstance(plugin, SchedulesPlugin)
    return plugin
