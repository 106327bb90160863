"""The ``conveyor`` command line: run workers, enqueue jobs, look at them and act on them.

    conveyor dev                                       # the first five minutes
    conveyor worker myproject.jobs:app -q reports,emails -c 20
    conveyor --app myproject.jobs:app enqueue generate_report --arg user_id=1 --wait
    conveyor jobs --state failed
    conveyor retry --all-failed --queue reports

Configuration options also read ``CONVEYOR_*`` environment variables (``CONVEYOR_APP``,
``CONVEYOR_URL``, ``CONVEYOR_QUEUES``, ``CONVEYOR_CONCURRENCY``, ...). Options that carry
the data of one call (``--arg``, ``--key``, a job selection, ``--yes``) do not: a stray
``CONVEYOR_KEY`` in a shell must not silently deduplicate every enqueue.

Errors are one line on stderr: exit 1 for a refused action (any `ConveyorError`), 2 for
a bad command line. Rendering lives in `cli_format`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from . import __version__
from . import cli_format as fmt
from . import cli_work as work
from .backends.base import JobFilter
from .cli_work import connected
from .errors import ConveyorError
from .jobs import FINAL_STATES, JobState
from .task import check_options

FINISHED = tuple(s for s in JobState if s in FINAL_STATES)


class _OneLineErrors(TyperGroup):
    """Turns every expected failure into one line on stderr instead of a panel or traceback."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             windows_expand_args: bool = True, **extra: Any) -> Any:
        url = os.environ.get("CONVEYOR_URL")
        try:
            code = super().main(args, prog_name, complete_var, False, windows_expand_args,
                                **extra)
        except typer.TyperException as exc:  # a bad command line (click's usage errors)
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            _fail(exc.format_message() + hint, exc.exit_code)
        except ConveyorError as exc:
            _fail(str(exc), 1)
        except typer.Abort:
            _fail("aborted", 1)
        finally:  # undo what --url set (cli_work.load), for callers that run us in-process
            _restore_env("CONVEYOR_URL", url)
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def _fail(message: str, code: int) -> NoReturn:
    sys.stderr.write(f"error: {' '.join(message.split())}\n")
    sys.exit(code)


cli = typer.Typer(cls=_OneLineErrors, invoke_without_command=True, add_completion=False,
                  pretty_exceptions_enable=False, rich_markup_mode="rich",
                  help="conveyor: background jobs for Python.")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"conveyor {__version__}")
        raise typer.Exit()


@cli.callback()
def _root(
    ctx: typer.Context,
    app: Annotated[str | None, typer.Option(
        "--app", envvar="CONVEYOR_APP", metavar="MODULE:ATTR",
        help="Your Conveyor app, e.g. myproject.jobs:app.")] = None,
    url: Annotated[str | None, typer.Option(
        "--url", envvar="CONVEYOR_URL", help="Backend URL; overrides the app's.")] = None,
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    ctx.obj = work.Globals(app, url)
    if ctx.invoked_subcommand is None:  # bare `conveyor`: help, not an error
        text = ctx.get_help()  # rich help prints itself and returns ""
        if text:
            typer.echo(text)
        raise typer.Exit()


# Commands that run your app's code (see cli_work), first in --help.
cli.command()(work.dev)
cli.command()(work.worker)
cli.command()(work.enqueue)
cli.command()(work.serve)


# -- reading ----------------------------------------------------------------------------------
JsonOut = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
QueueOpt = Annotated[str | None, typer.Option("--queue", "-q", help="Only this queue.")]
JobId = Annotated[str, typer.Argument(metavar="ID", help="A job id.", show_default=False)]


@cli.command()
def jobs(
    ctx: typer.Context,
    queue: QueueOpt = None,
    state: Annotated[list[JobState] | None, typer.Option(
        "--state", "-s", case_sensitive=False, help="Only these states (repeatable).")] = None,
    task: Annotated[str | None, typer.Option(help="Only this task.")] = None,
    search: Annotated[str | None, typer.Option(
        help="Text in the id, arguments or errors.")] = None,
    limit: Annotated[int, typer.Option(envvar="CONVEYOR_LIMIT", min=1, max=1000)] = 20,
    cursor: Annotated[str | None, typer.Option(help="Continue from a previous page.")] = None,
    as_json: JsonOut = False,
) -> None:
    """List jobs, newest first."""
    where = JobFilter(queue=queue, states=tuple(state or ()), task=task, search=search)
    with connected(ctx) as app:
        page = app.run_sync(app.backend.list_jobs, where, limit, cursor)
    if as_json:
        fmt.print_json({"jobs": [fmt.job_data(j) for j in page.jobs],
                        "next_cursor": page.next_cursor})
        return
    fmt.console().print(fmt.jobs_table(page.jobs))
    if page.next_cursor:
        typer.echo(f"next page: --cursor {page.next_cursor}")


@cli.command()
def job(ctx: typer.Context, job_id: JobId, as_json: JsonOut = False) -> None:
    """Everything about one job: arguments, options, progress, result, errors, logs."""
    with connected(ctx) as app:
        found = app.get_job(job_id).job
    if as_json:
        fmt.print_json(fmt.job_data(found))
    else:
        fmt.console().print(fmt.job_detail(found))


@cli.command()
def queues(ctx: typer.Context, as_json: JsonOut = False) -> None:
    """Jobs per state in each queue, whether it is paused, and its oldest waiting job."""
    with connected(ctx) as app:
        now = app.run_sync(app.backend.now)
        found = app.queues()
    if as_json:
        fmt.print_json([fmt.queue_data(q, now) for q in found])
    else:
        fmt.console().print(fmt.queues_table(found, now))


@cli.command()
def workers(ctx: typer.Context, as_json: JsonOut = False) -> None:
    """Registered workers; "stale" ones have not sent a heartbeat for 30 s."""
    with connected(ctx) as app:
        now = app.run_sync(app.backend.now)
        found = app.run_sync(app.backend.workers)
    if as_json:
        fmt.print_json([fmt.worker_data(w, now) for w in found])
    else:
        fmt.console().print(fmt.workers_table(found, now))


@cli.command()
def info(ctx: typer.Context, as_json: JsonOut = False) -> None:
    """Version, backend, capabilities, queues and workers at a glance."""
    with connected(ctx) as app:
        now = app.run_sync(app.backend.now)
        found = app.queues()
        registered = app.run_sync(app.backend.workers)
    stale = sum(fmt.is_stale(w, now) for w in registered)
    data = {
        "version": __version__, "url": app.url, "app": ctx.obj.app_path,
        "capabilities": fmt.capabilities_data(app.backend.capabilities),
        "tasks": sorted(app.tasks), "queues": [fmt.queue_data(q, now) for q in found],
        "workers": {"live": len(registered) - stale, "stale": stale},
    }
    if as_json:
        fmt.print_json(data)
    else:
        fmt.console().print(fmt.info_panel(data))


# -- acting -----------------------------------------------------------------------------------
@cli.command()
def retry(
    ctx: typer.Context,
    job_id: Annotated[str | None, typer.Argument(metavar="[ID]", show_default=False)] = None,
    all_failed: Annotated[bool, typer.Option(
        "--all-failed", help="Replay every failed job (of --queue).")] = False,
    queue: QueueOpt = None,
) -> None:
    """Replay a failed or cancelled job, or every failed job, with fresh attempts."""
    if (job_id is None) == (not all_failed):
        ctx.fail("give a job ID or --all-failed (not both)")
    if queue is not None and not all_failed:
        ctx.fail("--queue goes with --all-failed")
    with connected(ctx) as app:
        if job_id is not None:
            done = app.retry_job(job_id)
            typer.echo(f"job {done.id} is {done.state.value} again")
            return
        ids = app.run_sync(app.backend.retry, JobFilter(queue=queue, states=(JobState.FAILED,)))
    typer.echo(f"retried {len(ids)} failed job(s)" + (f" of queue {queue}" if queue else ""))


@cli.command()
def cancel(ctx: typer.Context, job_id: JobId) -> None:
    """Cancel a waiting or delayed job now, or ask a running job's worker to stop it."""
    with connected(ctx) as app:
        done = app.cancel_job(job_id)
    if done.state is JobState.ACTIVE:
        typer.echo(f"cancel requested: job {done.id} is running; its worker will stop it")
    else:
        typer.echo(f"job {done.id} is {done.state.value}")


@cli.command()
def promote(ctx: typer.Context, job_id: JobId) -> None:
    """Make a delayed job due now."""
    with connected(ctx) as app:
        done = app.promote_job(job_id)
    typer.echo(f"job {done.id} is {done.state.value} (due now)")


@cli.command()
def remove(ctx: typer.Context, job_id: JobId) -> None:
    """Delete a job that is not running (its id then reads as removed)."""
    with connected(ctx) as app:
        app.remove_job(job_id)
    typer.echo(f"job {job_id} removed")


def _set_paused(ctx: typer.Context, queue: str, paused: bool) -> None:
    check_options(queue=queue)
    with connected(ctx) as app:
        app.run_sync(app.backend.set_paused, queue, paused)
    typer.echo(f"queue {queue} {'paused: workers claim nothing from it' if paused else 'resumed'}")


QueueArg = Annotated[str, typer.Argument(metavar="QUEUE", show_default=False)]


@cli.command()
def pause(ctx: typer.Context, queue: QueueArg) -> None:
    """Stop workers from claiming jobs of a queue (running jobs finish; enqueue still works)."""
    _set_paused(ctx, queue, True)


@cli.command()
def resume(ctx: typer.Context, queue: QueueArg) -> None:
    """Let workers claim jobs of a paused queue again."""
    _set_paused(ctx, queue, False)


@cli.command()
def purge(
    ctx: typer.Context,
    queue: QueueOpt = None,
    state: Annotated[list[JobState] | None, typer.Option(
        "--state", "-s", case_sensitive=False,
        help="completed, failed and/or cancelled (default: all three).")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Really remove them.")] = False,
) -> None:
    """Remove finished jobs (never waiting, delayed or running ones)."""
    states = tuple(state or FINISHED)
    unfinished = [s.value for s in states if s not in FINAL_STATES]
    if unfinished:
        ctx.fail(f"purge removes finished jobs only, not {', '.join(unfinished)} ones")
    what = "/".join(s.value for s in states) + (f" jobs of queue {queue}" if queue else " jobs")
    with connected(ctx) as app:
        if not yes:
            count = sum(q.counts.get(s, 0) for q in app.queues() if queue in (None, q.name)
                        for s in states)
            _fail(f"purge would remove {count} {what}; add --yes to do it", 1)
        removed = app.run_sync(app.backend.remove, JobFilter(queue=queue, states=states))
    typer.echo(f"removed {len(removed)} {what}")


def main() -> None:
    """The ``conveyor`` script."""
    cli(prog_name="conveyor")


if __name__ == "__main__":
    main()
