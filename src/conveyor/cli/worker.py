"""``conveyor worker``: run jobs until SIGTERM/SIGINT."""

from __future__ import annotations

from functools import partial
from typing import Annotated

import typer

from .. import health, logs, loops, supervisor
from ..app import Conveyor
from ..worker import Worker
from ._root import cli
from .common import (
    AppArg,
    Concurrency,
    LogFormat,
    LogFormatOpt,
    LogJobsOpt,
    LogLevel,
    LogLevelOpt,
    LoopChoice,
    LoopOpt,
    StoreJobLogsOpt,
    configure_logging,
    load,
    queue_names,
)
from .running import run_worker


@cli.command()
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
    log_level: LogLevelOpt = LogLevel.INFO,
    log_format: LogFormatOpt = LogFormat.TEXT,
    store_job_logs: StoreJobLogsOpt = False,
    log_jobs: LogJobsOpt = False,
    loop: LoopOpt = LoopChoice.AUTO,
    processes: Annotated[str, typer.Option(
        "--processes", "-p", envvar="CONVEYOR_PROCESSES", metavar="N|auto",
        help="Worker processes under one supervisor (auto: one per CPU).")] = "1",
    max_jobs_per_child: Annotated[int | None, typer.Option(
        envvar="CONVEYOR_MAX_JOBS_PER_CHILD", min=1,
        help="Replace a worker process after it has finished this many jobs.")] = None,
    max_memory_per_child: Annotated[str | None, typer.Option(
        envvar="CONVEYOR_MAX_MEMORY_PER_CHILD", metavar="SIZE",
        help="Replace a worker process above this resident memory, e.g. 500MB.")] = None,
    health_port: Annotated[int | None, typer.Option(
        envvar="CONVEYOR_HEALTH_PORT", min=1, max=65535,
        help="Serve /healthz and /readyz on this port (all interfaces).")] = None,
) -> None:
    """Run a worker until SIGTERM/SIGINT (graceful: running jobs get --grace seconds).

    With -p N, a supervisor keeps N worker processes running: it restarts one that
    crashes, replaces one past --max-jobs-per-child / --max-memory-per-child (after its
    jobs finish), and passes SIGTERM/SIGINT on to all of them.
    """
    app = load(ctx, need_tasks=True, app_path=app_path)
    names = queue_names(queues) or app.queue_names
    count = supervisor.process_count(processes)
    max_memory = None if max_memory_per_child is None else supervisor.memory_size(
        max_memory_per_child)
    loops.resolve(loop.value)  # an unusable choice fails here, not in every child
    probes = None if health_port is None else health.bind(health_port)
    configure_logging(log_level, log_format, store_job_logs)
    if count > 1 or max_jobs_per_child or max_memory:
        spec = supervisor.ChildSpec(
            app_path=app_path or ctx.obj.app_path, url=app.url, queues=tuple(names),
            concurrency=concurrency, lease=lease, grace=grace, process_workers=process_workers,
            log_level=log_level.value, log_format=log_format.value,
            store_job_logs=store_job_logs, log_jobs=log_jobs, loop=loop.value,
            max_jobs=max_jobs_per_child, max_memory=max_memory, group=supervisor.new_group_id())
        raise typer.Exit(supervisor.Supervisor(spec, count, probes).run())
    if log_jobs:  # opt-in: it costs about a third of a no-op job's worker CPU
        logs.install_job_log(app)
    work = Worker(app, names, concurrency=concurrency, lease=lease, grace=grace,
                  process_workers=process_workers)
    beside = [] if probes is None else [health.serve(probes, partial(backend_answers, app))]
    loops.run(run_worker(app, work, *beside), loop.value)


async def backend_answers(app: Conveyor) -> str | None:
    """A worker is ready while its backend answers (None), else why not."""
    try:
        await app.backend.now()
    except Exception as exc:
        return f"backend unreachable: {exc}"
    return None
