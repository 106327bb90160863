"""``conveyor dev``: the first five minutes on one machine. A worker plus maintenance on
the embedded SQLite default, the HTTP API (open, 127.0.0.1 only) beside it, and a panel
saying what to try next.

A project can give ``dev`` defaults in its ``pyproject.toml`` (read from the current
directory), so that a bare ``conveyor dev`` runs its app::

    [tool.conveyor.dev]
    app = "myproject.jobs:app"          # run when no APP / --app / CONVEYOR_APP is given
    page = "myproject.web:serve_beside" # optional: async (app, socket, settings) -> None,
                                        # served on --api-port + 1 until cancelled
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import sys
import tomllib
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any

import typer

from .. import logs, loops
from ..app import Conveyor
from ..errors import ConfigurationError
from ..loading import import_path
from ..worker import Worker
from . import render
from ._root import cli
from .common import (
    AppArg,
    Concurrency,
    LogFormat,
    LogFormatOpt,
    LogLevel,
    LoopChoice,
    LoopOpt,
    configure_logging,
    load,
    note,
)
from .running import run_worker

DEV_URL = "sqlite:///conveyor.db"
HOST = "127.0.0.1"


def project_defaults(folder: Path | None = None) -> dict[str, str]:
    """``[tool.conveyor.dev]`` of the pyproject.toml in `folder` (the current directory)."""
    path = (folder or Path.cwd()) / "pyproject.toml"
    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    table = data.get("tool", {}).get("conveyor", {}).get("dev", {})
    return {k: v for k, v in table.items() if isinstance(v, str)}


@dataclasses.dataclass
class DevService:
    """Something ``conveyor dev`` runs beside its worker, with a line for the dev panel."""

    label: str
    line: str
    run: Coroutine[Any, Any, None]


def dev_services(app: Conveyor, api_port: int = 8000, page: str | None = None
                 ) -> list[DevService]:
    """What ``conveyor dev`` runs beside its worker (which also does maintenance): the HTTP
    API, open (no auth) and bound to 127.0.0.1 only, so that one command gives a new user
    the whole system on the embedded SQLite default; and the project's page, if it names
    one. Each service runs until cancelled.
    """
    if not api_port:
        return []
    from ..http import serve
    from ..web.settings import HttpSettings

    try:
        sock = serve.bind(HOST, api_port)
    except OSError as exc:
        raise ConfigurationError(f"cannot serve the HTTP API on {HOST}:{api_port} ({exc}): "
                                 "pass another --api-port, or --api-port 0 for none") from None
    settings = HttpSettings.from_env(open=True)
    services = [DevService(
        "api", f"http://{HOST}:{api_port}/docs  (open: no auth, {HOST} only)\n"
        f"  dashboard http://{HOST}:{api_port}/dashboard/",
        serve.serve_beside(app, sock, settings))]
    if page:
        services += _page(app, page, api_port + 1, settings)
    return services


def _page(app: Conveyor, path: str, port: int, settings: Any) -> list[DevService]:
    """The project's own page (``page`` in ``[tool.conveyor.dev]``) on `port`."""
    from ..http import serve

    try:
        serve_page: Callable[..., Awaitable[None]] = import_path(path, "page")
        sock = serve.bind(HOST, port)
    except (ConfigurationError, OSError) as exc:
        note(f"the page {path} is not started: {exc}")
        return []

    async def run() -> None:
        await serve_page(app, sock, settings)

    return [DevService("page", f"http://{HOST}:{port}/  ({path})", run())]


def activate_line() -> str | None:
    """How another terminal gets the ``conveyor`` command of this one: activate the
    virtualenv it runs from (None outside one)."""
    if sys.prefix == sys.base_prefix:
        return None
    venv = Path(sys.prefix)
    with contextlib.suppress(ValueError):
        venv = venv.relative_to(Path.cwd())
    return f"source {venv / 'bin' / 'activate'}"


def example_call(app: Conveyor) -> str:
    """``TASK --arg name=value ...`` for the app's first task, for the dev panel."""
    if not app.tasks:
        return "TASK"
    name = next(iter(app.tasks))
    samples = {"int": "1", "float": "1.5", "bool": "true"}
    call = [name]
    for param in app.tasks[name].signature.inner.parameters.values():
        if param.default is inspect.Parameter.empty and param.kind in (
                param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            hint = param.annotation  # a string under `from __future__ import annotations`
            hint = hint if isinstance(hint, str) else getattr(hint, "__name__", "")
            call.append(f"--arg {param.name}={samples.get(hint, 'VALUE')}")
    return " ".join(call)


@cli.command()
def dev(ctx: typer.Context, app_path: AppArg = None, concurrency: Concurrency = 10,
        api_port: Annotated[int, typer.Option(
            envvar="CONVEYOR_API_PORT", min=0, max=65535,
            help="Port of the HTTP API on 127.0.0.1 (open, no auth); 0: no API.")] = 8000,
        log_format: LogFormatOpt = LogFormat.TEXT,
        loop: LoopOpt = LoopChoice.AUTO,
        ) -> None:
    """Try conveyor on one machine: a worker plus maintenance on sqlite:///conveyor.db,
    and the HTTP API on 127.0.0.1:8000.

    Runs the app of [tool.conveyor.dev] in ./pyproject.toml unless you name yours.
    """
    defaults = project_defaults()
    path = app_path or ctx.obj.app_path or defaults.get("app")
    if path is None:
        raise ConfigurationError("this command needs your app: pass APP, --app MODULE:ATTR or "
                                 "set CONVEYOR_APP (or app in [tool.conveyor.dev] of "
                                 "./pyproject.toml)")
    app = load(ctx, need_tasks=True, app_path=path, default_url=DEV_URL)
    services = dev_services(app, api_port, defaults.get("page"))  # a busy port stops us here
    configure_logging(LogLevel.INFO, log_format)
    render.console().print(render.dev_panel(app.url, path, app.queue_names, sorted(app.tasks),
                                            example_call(app),
                                            [(s.label, s.line) for s in services],
                                            activate_line()))
    logs.install_job_log(app)
    work = Worker(app, app.queue_names, concurrency=concurrency, maintenance=True)
    loops.run(run_worker(app, work, *(s.run for s in services)), loop.value)
