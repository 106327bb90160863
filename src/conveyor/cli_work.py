"""The CLI commands that load your app and run its code: ``worker``, ``dev`` and
``enqueue``, plus finding the app from ``MODULE:ATTR`` and connecting to the backend.

`cli` registers these functions as commands; rendering lives in `cli_format`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import importlib
import inspect
import json
import logging
import os
import sys
import time
from collections.abc import Coroutine, Iterator, Sequence
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn

from . import cli_format as fmt
from .app import Conveyor
from .errors import ConfigurationError, JobCancelledError, JobFailedError, ResultTimeoutError
from .jobs import Job, JobState
from .stopping import cancel_until_done
from .task import check_options
from .worker import Worker

DEV_APP = "examples.reports:app"
DEV_URL = "sqlite:///conveyor.db"
# How long a dev service gets to stop on its first cancellation before it is cancelled
# again: past the HTTP API's graceful shutdown (10 s), which a second cancel would cut short.
SERVICE_GRACE = 15.0


def _note(message: str) -> None:
    """A remark for the person at the terminal (stderr, so stdout stays parseable)."""
    sys.stderr.write(message + "\n")


@dataclasses.dataclass(frozen=True)
class Globals:
    """The options given before the command: which app, which backend."""

    app_path: str | None
    url: str | None


def load_app(path: str) -> Conveyor:
    """Import ``MODULE:ATTR`` (from the current directory too, like uvicorn) as an app."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ConfigurationError(f"bad app {path!r}: use MODULE:ATTRIBUTE, e.g. myproject.jobs:app")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import app module {module_name!r}: {exc}") from None
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ConfigurationError(f"module {module_name!r} has no attribute {attr!r}")
        target = getattr(target, part)
    if not isinstance(target, Conveyor):
        raise ConfigurationError(f"{path} is a {type(target).__name__}, not a Conveyor app")
    return target


def load(ctx: typer.Context, *, need_tasks: bool = False, app_path: str | None = None,
         default_app: str | None = None, default_url: str | None = None) -> Conveyor:
    given: Globals = ctx.obj
    path = app_path or given.app_path or default_app
    url = given.url or default_url
    if url:
        # Conveyor() reads it while the app module imports, and so do the children the
        # process executor spawns: everything this command starts uses the same backend.
        os.environ["CONVEYOR_URL"] = url
    if path is None:
        if need_tasks:
            raise ConfigurationError("this command needs your app: pass --app MODULE:ATTR "
                                     "or set CONVEYOR_APP")
        return Conveyor(url)
    app = load_app(path)
    if url and app.url != url:
        # The app was built with a URL of its own (or imported earlier): --url wins.
        app.use(url)
    return app


@contextlib.contextmanager
def connected(ctx: typer.Context, *, need_tasks: bool = False) -> Iterator[Conveyor]:
    app = load(ctx, need_tasks=need_tasks)
    app.open()
    try:
        yield app
    finally:
        app.close()


# -- running work ------------------------------------------------------------------------------
class LogLevel(enum.StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


def _configure_logging(level: LogLevel) -> None:
    logging.basicConfig(level=level.value.upper(), stream=sys.stderr, force=True,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")


def _queue_names(values: Sequence[str] | None) -> list[str]:
    names = [name.strip() for value in values or () for name in value.split(",")]
    for name in names:
        check_options(queue=name)
    return names


async def _run_worker(app: Conveyor, worker: Worker, *others: Coroutine[Any, Any, None]) -> None:
    """Run the worker; services beside it (dev) run until it stops, then are cancelled
    (each stops gracefully on cancellation; one that has not stopped SERVICE_GRACE
    seconds later is cancelled again, so a swallowed cancellation cannot hang the exit)."""
    worker.install_signal_handlers()
    services = [asyncio.ensure_future(other) for other in others]
    try:
        await worker.run()
    finally:
        for error in await cancel_until_done(*services, again_after=SERVICE_GRACE):
            logging.getLogger("conveyor").error("dev service failed: %s", error)
        await app.aclose()


AppArg = Annotated[str | None, typer.Argument(
    metavar="APP", show_default=False, help="MODULE:ATTR of your app (or --app / CONVEYOR_APP).")]
Concurrency = Annotated[int, typer.Option(
    "--concurrency", "-c", envvar="CONVEYOR_CONCURRENCY", min=1, help="Jobs run at once.")]


def worker(
    ctx: typer.Context,
    app_path: AppArg = None,
    queues: Annotated[list[str] | None, typer.Option(
        "--queues", "-q", envvar="CONVEYOR_QUEUES",
        help="Comma-separated queues; default: every queue of the app's tasks.")] = None,
    concurrency: Concurrency = 10,
    lease: Annotated[float, typer.Option(
        envvar="CONVEYOR_LEASE", help="Seconds a claim lasts between renewals.")] = 30.0,
    grace: Annotated[float, typer.Option(
        envvar="CONVEYOR_GRACE", min=0, help="Seconds running jobs get on shutdown.")] = 30.0,
    process_workers: Annotated[int | None, typer.Option(
        envvar="CONVEYOR_PROCESS_WORKERS", min=1,
        help="Child processes for executor='process' tasks (default: CPU count).")] = None,
    log_level: Annotated[LogLevel, typer.Option(
        envvar="CONVEYOR_LOG_LEVEL", case_sensitive=False)] = LogLevel.INFO,
) -> None:
    """Run a worker until SIGTERM/SIGINT (graceful: running jobs get --grace seconds)."""
    app = load(ctx, need_tasks=True, app_path=app_path)
    names = _queue_names(queues) or app.queue_names
    _configure_logging(log_level)
    work = Worker(app, names, concurrency=concurrency, lease=lease, grace=grace,
                  process_workers=process_workers)
    asyncio.run(_run_worker(app, work))


@dataclasses.dataclass
class DevService:
    """Something ``conveyor dev`` runs beside its worker, with a line for the dev panel."""

    label: str
    line: str
    run: Coroutine[Any, Any, None]


def dev_services(app: Conveyor, api_port: int = 8000) -> list[DevService]:
    """What ``conveyor dev`` runs beside its worker (which also does maintenance): the HTTP
    API, open (no auth) and bound to 127.0.0.1 only, so that one command gives a new user
    the whole system on the embedded SQLite default. Each service runs until cancelled.
    """
    services: list[DevService] = []
    if api_port:
        from .http import serve
        from .http.settings import HttpSettings

        host = "127.0.0.1"
        try:
            sock = serve.bind(host, api_port)
        except OSError as exc:
            _note(f"the HTTP API is not started: cannot bind {host}:{api_port} ({exc}); "
                  "pick another --api-port")
        else:
            settings = HttpSettings.from_env(open=True)
            services.append(DevService(
                "api", f"http://{host}:{api_port}/docs  (open: no auth, {host} only)\n"
                f"  dashboard http://{host}:{api_port}/dashboard/",
                serve.serve_beside(app, sock, settings)))
            services += _example_page(app, host, api_port + 1, settings)
    return services


def _example_page(app: Conveyor, host: str, port: int, settings: Any) -> list[DevService]:
    """The example app's "Generate Report" page (examples/web.py), when dev runs that app."""
    reports = sys.modules.get("examples.reports")
    if reports is None or getattr(reports, "app", None) is not app:
        return []
    from .http import serve

    try:
        web = importlib.import_module("examples.web")
        sock = serve.bind(host, port)
    except (ImportError, OSError) as exc:
        _note(f"the example page is not started: {exc}")
        return []
    return [DevService("page", f"http://{host}:{port}/  (the Generate Report example)",
                       web.serve_beside(app, sock, settings))]


def _example_call(app: Conveyor) -> str:
    """``TASK --arg name=value ...`` for one of the app's tasks, for the dev panel."""
    if "generate_report" in app.tasks:
        return "generate_report --arg user_id=1"
    if not app.tasks:
        return "TASK"
    name = sorted(app.tasks)[0]
    samples = {"int": "1", "float": "1.5", "bool": "true"}
    call = [name]
    for param in app.tasks[name].signature.inner.parameters.values():
        if param.default is inspect.Parameter.empty and param.kind in (
                param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            hint = param.annotation  # a string under `from __future__ import annotations`
            hint = hint if isinstance(hint, str) else getattr(hint, "__name__", "")
            call.append(f"--arg {param.name}={samples.get(hint, 'VALUE')}")
    return " ".join(call)


def dev(ctx: typer.Context, app_path: AppArg = None, concurrency: Concurrency = 10,
        api_port: Annotated[int, typer.Option(
            envvar="CONVEYOR_API_PORT", min=0, max=65535,
            help="Port of the HTTP API on 127.0.0.1 (open, no auth); 0: no API.")] = 8000,
        ) -> None:
    """Try conveyor on one machine: a worker plus maintenance on sqlite:///conveyor.db,
    and the HTTP API on 127.0.0.1:8000.

    Runs the example app (examples.reports:app) unless you name yours.
    """
    try:
        app = load(ctx, need_tasks=True, app_path=app_path, default_app=DEV_APP,
                   default_url=DEV_URL)
    except ConfigurationError as exc:
        if app_path or ctx.obj.app_path:
            raise
        raise ConfigurationError(f"{exc}; the example app lives in conveyor's repository: "
                                 "run from there or pass your own APP") from None
    _configure_logging(LogLevel.INFO)
    services = dev_services(app, api_port)
    fmt.console().print(fmt.dev_panel(app.url, app_path or ctx.obj.app_path or DEV_APP,
                                      app.queue_names, sorted(app.tasks), _example_call(app),
                                      [(s.label, s.line) for s in services]))
    work = Worker(app, app.queue_names, concurrency=concurrency, maintenance=True)
    asyncio.run(_run_worker(app, work, *(s.run for s in services)))


def serve(
    ctx: typer.Context,
    app_path: AppArg = None,
    host: Annotated[str, typer.Option(envvar="CONVEYOR_HOST", help="Address to bind.")
                    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="CONVEYOR_PORT", min=0, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(
        envvar="CONVEYOR_WEB_WORKERS", min=1, help="Server processes.")] = 1,
    access_log: Annotated[bool, typer.Option(
        "--access-log", envvar="CONVEYOR_ACCESS_LOG", help="Log every request.")] = False,
    log_level: Annotated[LogLevel, typer.Option(
        envvar="CONVEYOR_LOG_LEVEL", case_sensitive=False)] = LogLevel.INFO,
) -> None:
    """Serve the HTTP API (uvicorn) until SIGTERM/SIGINT: enqueue, status, SSE, control.

    Tokens: CONVEYOR_TOKENS="admin:TOKEN,read:TOKEN". Without auth: CONVEYOR_OPEN=1 (loopback only).
    """
    from .http import serve as server
    from .http.settings import HttpSettings

    app = load(ctx, need_tasks=True, app_path=app_path)
    # the server processes build the app again from the environment (uvicorn's factory)
    os.environ["CONVEYOR_APP"] = app_path or ctx.obj.app_path or ""
    os.environ["CONVEYOR_URL"] = app.url
    warning = server.check_exposure(HttpSettings.from_env(), host)
    if warning:
        _note(f"conveyor serve: {warning}")
    server.run(host, port, workers, log_level=log_level.value, access_log=access_log)


# -- enqueue ----------------------------------------------------------------------------------
def _json_or_text(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def parse_arguments(pairs: Sequence[str], json_text: str | None) -> dict[str, Any]:
    """Keyword arguments from ``--json '{...}'`` then ``--arg name=value`` (JSON if it
    parses, else the text itself)."""
    kwargs: dict[str, Any] = {}
    if json_text is not None:
        try:
            loaded = json.loads(json_text)
        except ValueError as exc:
            raise typer.BadParameter(f"not JSON ({exc})", param_hint="--json") from None
        if not isinstance(loaded, dict):
            raise typer.BadParameter("must be a JSON object like '{\"days\": 90}'",
                                     param_hint="--json")
        kwargs.update(loaded)
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="--arg")
        kwargs[name.strip()] = _json_or_text(raw)
    return kwargs


def _describe(job: Job) -> str:
    step = job.progress.get("step") if isinstance(job.progress, dict) else None
    return f"{job.task} {job.state.value}" + (f" ({step})" if step is not None else "")


def _follow(app: Conveyor, job: Job, timeout: float | None) -> Job:
    """Poll the job until it finishes, drawing its reported progress on stderr."""
    deadline = None if timeout is None else time.monotonic() + timeout
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
               TaskProgressColumn())
    with Progress(*columns, console=fmt.console(stderr=True)) as bar:
        line = bar.add_task(_describe(job), total=100)
        while not job.is_final:
            if deadline is not None and time.monotonic() >= deadline:
                raise ResultTimeoutError(job.id, timeout or 0.0, job.state.value)
            time.sleep(0.2)
            job = app.get_job(job.id).job
            done = 100.0 if job.state is JobState.COMPLETED else fmt.percent(job.progress)
            bar.update(line, completed=done or 0, description=_describe(job))
    return job


def enqueue(
    ctx: typer.Context,
    task: Annotated[str, typer.Argument(
        metavar="TASK", help="The task's name.", show_default=False)],
    arg: Annotated[list[str] | None, typer.Option(
        "--arg", "-a", metavar="NAME=VALUE", help="A keyword argument; VALUE is JSON if it "
        "parses (90, true, [1,2]), else text.")] = None,
    json_kwargs: Annotated[str | None, typer.Option(
        "--json", metavar="OBJECT", help="Keyword arguments as one JSON object.")] = None,
    queue: Annotated[str | None, typer.Option(help="Override the task's queue.")] = None,
    delay: Annotated[str | None, typer.Option(help="Run after this long: 30, 90s, 5m, 1h.")] = None,
    priority: Annotated[int | None, typer.Option(help="Higher runs first.")] = None,
    key: Annotated[str | None, typer.Option(
        help="Idempotency key: a second enqueue returns the first job.")] = None,
    attempts: Annotated[int | None, typer.Option(help="Attempts before it fails.")] = None,
    timeout: Annotated[str | None, typer.Option(help="Per-attempt timeout: 60, 2m.")] = None,
    wait: Annotated[bool, typer.Option(
        "--wait", help="Follow the job's progress, then print its result.")] = False,
    timeout_wait: Annotated[float | None, typer.Option(
        envvar="CONVEYOR_TIMEOUT_WAIT", min=0, help="Give up --wait after this many seconds.")
    ] = None,
) -> None:
    """Enqueue one job; prints its id (with --wait, then its result as JSON)."""
    kwargs = parse_arguments(arg or (), json_kwargs)
    options: dict[str, Any] = {name: value for name, value in (
        ("queue", queue), ("delay", delay), ("priority", priority), ("key", key),
        ("attempts", attempts), ("timeout", timeout)) if value is not None}
    with connected(ctx, need_tasks=True) as app:
        prepared = app.get_task(task).options(**options).prepare(**kwargs)
        handle = app.enqueue_many([prepared])[0]
        job = handle.job
        typer.echo(job.id)
        if handle.created:
            _note(f"enqueued {job.task} on queue {job.queue} ({job.state.value})")
        else:
            _note(f"a job with key {job.key!r} exists already: returned it, not a new one "
                  f"({job.state.value})")
        if not wait:
            return
        try:
            job = _follow(app, job, timeout_wait)
        except KeyboardInterrupt:
            _note(f"stopped waiting; job {job.id} carries on")
            raise typer.Exit(130) from None
    if job.state is JobState.FAILED:
        raise JobFailedError(job.id, job.last_error)
    if job.state is JobState.CANCELLED:
        raise JobCancelledError(job.id)
    typer.echo(fmt.compact(job.result))
