"""The plugin protocol: how a part attaches to conveyor without the core knowing it.

Webhooks, Prometheus metrics, schedules and tracing are plugins; a third party's plugin
uses exactly the same protocol. A plugin is a `Plugin` subclass whose methods are all
optional; ``app.install(plugin)`` registers it:

    class Audit(Plugin):
        name = "acme.audit"
        options = ("audit_tag",)                  # task.options(audit_tag="x") is ours

        def check_option(self, name, value):      # validate; the value lands in job.meta
            if not isinstance(value, str):
                raise InvalidOptionError("audit_tag must be a string")
            return value

        def setup(self, app):                     # add middleware and worker hooks
            app.add_middleware(AuditMiddleware())

        def leader_duties(self):                  # one process at a time, every keeper beat
            return [self.sweep]

        async def on_events(self, events):        # the event stream, in the HTTP service
            ...

        def router(self):                         # routes, mounted under /v1
            return my_fastapi_router

    `http_middleware()` (an ASGI middleware for the HTTP service) and `metrics_collector()`
    (series for /metrics) complete the protocol; tracing and schedules use them.

What runs where. `setup` runs once, where the app is defined (producers, HTTP service,
workers and process children all build the app, so all of them see the plugin). Leader
duties run in the worker holding the maintenance lock, on its keeper thread with the
keeper's backend: keep them short and safe to repeat. `on_events` runs in processes that
read the event stream (the HTTP service); it gets every event once per process, in order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from .errors import ConfigurationError, InvalidOptionError
from .serialization import dumps_checked

if TYPE_CHECKING:
    from .app import Conveyor
    from .backends.base import Backend
    from .jobs import Event

# Something only one process should do at a time, run by the maintenance lock's holder on
# every beat with the keeper's backend. Keep it short (it shares the thread that renews
# leases) and safe to repeat (leadership can change between two calls).
LeaderDuty = Callable[["Backend"], Awaitable[None]]

# Options of built-in plugins, so that using one without its plugin says what to install.
BUILT_IN_OPTIONS: Mapping[str, tuple[str, str]] = {
    "webhook": ("conveyor.webhooks",
                "call conveyor.webhooks.enable(app) where the app is defined"),
}


class Plugin:
    """A part built on conveyor's seams. Override what you need; every method is optional."""

    name: ClassVar[str] = ""
    options: ClassVar[tuple[str, ...]] = ()
    router_prefix: ClassVar[str] = "/v1"  # where `router()`'s routes are mounted

    def setup(self, app: Conveyor) -> None:
        """Called once by ``app.install``: add middleware, worker hooks, tasks."""

    def check_option(self, name: str, value: Any) -> Any:
        """Validate one of this plugin's enqueue options; the answer is kept in
        ``job.meta[name]`` (so it must be JSON). Raise InvalidOptionError to refuse."""
        return value

    def leader_duties(self) -> Sequence[LeaderDuty]:
        """Calls the maintenance lock's holder makes on every keeper beat."""
        return ()

    async def on_events(self, events: Sequence[Event]) -> None:
        """A page of the event stream, in order (in processes that read the stream)."""

    def router(self) -> Any:
        """A FastAPI ``APIRouter`` that ``create_app`` mounts at `router_prefix`, or None."""
        return None

    def http_middleware(self) -> tuple[type, dict[str, Any]] | None:
        """An ASGI middleware class and its options for the HTTP service (e.g. tracing),
        or None."""
        return None

    def metrics_collector(self) -> Any:
        """A prometheus_client collector the metrics plugin registers (it may have an async
        ``refresh(backend)``, called before each scrape), or None."""
        return None


class Plugins:
    """The plugins installed in one app, and the enqueue options they own."""

    def __init__(self, reserved_options: Iterable[str]) -> None:
        self._reserved = frozenset(reserved_options)
        self._installed: dict[str, Plugin] = {}
        self._owner_of: dict[str, Plugin] = {}

    def __iter__(self) -> Any:
        return iter(list(self._installed.values()))

    def __len__(self) -> int:
        return len(self._installed)

    def get(self, name: str) -> Plugin | None:
        return self._installed.get(name)

    def add(self, plugin: Plugin) -> None:
        name = plugin.name
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"{type(plugin).__name__} has no name: set `name = ...`")
        if name in self._installed:
            raise ConfigurationError(f"a plugin named {name!r} is installed already")
        for option in plugin.options:
            if option in self._reserved:
                raise ConfigurationError(f"plugin {name}: {option!r} is a core option")
            if option in self._owner_of:
                raise ConfigurationError(f"plugin {name}: option {option!r} belongs to "
                                         f"plugin {self._owner_of[option].name}")
        self._installed[name] = plugin
        self._owner_of.update((option, plugin) for option in plugin.options)

    def meta_for(self, extra: Mapping[str, Any]) -> dict[str, Any]:
        """Validate options no core field takes into the job meta entries they become."""
        meta: dict[str, Any] = {}
        for option, value in extra.items():
            owner = self._owner_of.get(option)
            if owner is None:
                raise InvalidOptionError(_unknown(option))
            checked = owner.check_option(option, value)
            dumps_checked(checked, option)
            meta[option] = checked
        return meta

    def subscribers(self) -> list[Plugin]:
        """Plugins that follow the event stream (those that override `on_events`)."""
        return [p for p in self._installed.values()
                if type(p).on_events is not Plugin.on_events]


def _unknown(option: str) -> str:
    built_in = BUILT_IN_OPTIONS.get(option)
    if built_in is not None:
        plugin, how = built_in
        return f"option {option!r} needs the {plugin} plugin, which is not installed: {how}"
    return f"unknown option {option!r}"
