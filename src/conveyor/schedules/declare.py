"""Declaring schedules in code: what ``@app.cron`` and ``app.schedule`` do.

The app's methods are thin: they land here. The first declaration installs the schedules
plugin (plugin.py), which holds the runtime API object and the scheduler.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import ConfigurationError
from .plugin import SchedulesPlugin, enable
from .spec import ScheduleSpec

if TYPE_CHECKING:
    from ..app import Conveyor
    from ..task import Task

F = TypeVar("F")


def schedules_of(app: Conveyor) -> SchedulesPlugin:
    return enable(app)


def cron(app: Conveyor, expression: str, *, name: str | None = None, tz: str | None = None,
         args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None,
         **options: Any) -> Callable[[F], F]:
    """``@app.cron("0 9 * * *", tz="Europe/Lisbon")`` above ``@app.task`` (or on a plain
    function, which becomes a task with default options). Stack it for several schedules
    of one task; give each but one a name=."""

    def decorate(fn: F) -> F:
        task = _task_of(app, fn)
        schedules_of(app).schedules.declare(name, task, args, kwargs, cron=expression, tz=tz,
                                            **options)
        return task  # type: ignore[return-value]  # a plain function became this task

    return decorate


def schedule(app: Conveyor, name: str, task: Task[Any, Any] | str, *, cron: str | None = None,
             every: Any = None, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None,
             **options: Any) -> ScheduleSpec:
    """``app.schedule("nightly-cleanup", cleanup, cron="*/15 * * * *", kwargs={...})``."""
    resolved = app.get_task(task) if isinstance(task, str) else task
    return schedules_of(app).schedules.declare(name, resolved, args, kwargs, cron=cron,
                                               every=every, **options)


def _task_of(app: Conveyor, fn: Any) -> Task[Any, Any]:
    from ..task import Task

    if isinstance(fn, Task):
        if fn.app is not app:
            raise ConfigurationError(f"task {fn.name!r} belongs to another app")
        return fn
    if callable(fn):
        task: Task[Any, Any] = app.task(fn)
        return task
    raise ConfigurationError("@app.cron decorates a task or a function")
