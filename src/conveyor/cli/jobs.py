"""Commands about jobs: list them, show one, and act on them (retry, cancel, promote,
remove, purge)."""

from __future__ import annotations

from typing import Annotated

import typer

from ..backends.base import JobFilter
from ..flow import why
from ..flows.view import waiting_for
from ..jobs import FINAL_STATES, JobState
from . import render
from ._root import cli, fail
from .common import FINISHED, JobId, JsonOut, QueueOpt, connected, find_job_id


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
    with connected(ctx, read_only=True) as app:
        page = app.run_sync(app.backend.list_jobs, where, limit, cursor)
    if as_json:
        render.print_json({"jobs": [render.job_data(j) for j in page.jobs],
                           "next_cursor": page.next_cursor})
        return
    render.console().print(render.jobs_table(page.jobs))
    if page.next_cursor:
        typer.echo(f"next page: --cursor {page.next_cursor}")


@cli.command()
def job(ctx: typer.Context, job_id: JobId, as_json: JsonOut = False) -> None:
    """Everything about one job: arguments, options, progress, result, errors, logs."""
    with connected(ctx, read_only=True) as app:
        found = app.get_job(find_job_id(app, job_id)).job
        reasons = app.run_sync(why.why_waiting, app.backend, found) \
            if found.state in (JobState.WAITING, JobState.DELAYED) else []
    if as_json:
        render.print_json({**render.job_data(found),
                           "waiting_reasons": [why.as_json(r) for r in reasons]})
    else:
        render.console().print(render.job_detail(found))
        for reason in reasons:  # why it is not running (conveyor/flow/why.py)
            typer.echo(f"waiting: {why.describe(reason)}")
        if found.state is JobState.WAITING_CHILDREN:  # a flow's job (conveyor/flows)
            typer.echo(f"waiting: {waiting_for(found)}")


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
            done = app.retry_job(find_job_id(app, job_id))
            typer.echo(f"job {done.id} is {done.state.value} again")
            return
        ids = app.retry_jobs(JobFilter(queue=queue, states=(JobState.FAILED,)))
    typer.echo(f"retried {len(ids)} failed job(s)" + (f" of queue {queue}" if queue else ""))


@cli.command()
def cancel(ctx: typer.Context, job_id: JobId) -> None:
    """Cancel a waiting or delayed job now, or ask a running job's worker to stop it."""
    with connected(ctx) as app:
        done = app.cancel_job(find_job_id(app, job_id))
    if done.state is JobState.ACTIVE:
        typer.echo(f"cancel requested: job {done.id} is running; its worker will stop it")
    else:
        typer.echo(f"job {done.id} is {done.state.value}")


@cli.command()
def promote(ctx: typer.Context, job_id: JobId) -> None:
    """Make a delayed job due now."""
    with connected(ctx) as app:
        done = app.promote_job(find_job_id(app, job_id))
    typer.echo(f"job {done.id} is {done.state.value} (due now)")

@cli.command()
def remove(ctx: typer.Context, job_id: JobId) -> None:
    """Delete a job that is not running (its id then reads as removed)."""
    with connected(ctx) as app:
        found = find_job_id(app, job_id)
        app.remove_job(found)
    typer.echo(f"job {found} removed")


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
            fail(f"purge would remove {count} {what}; add --yes to do it", 1)
        removed = app.remove_jobs(JobFilter(queue=queue, states=states))
    typer.echo(f"removed {len(removed)} {what}")

