"""Commands about queues: counts per state, pause, resume and delete."""

from __future__ import annotations

from typing import Annotated

import typer

from ..task import check_options
from . import render
from ._root import cli
from .common import JsonOut, connected


@cli.command()
def queues(ctx: typer.Context, as_json: JsonOut = False) -> None:
    """Jobs per state in each queue, whether it is paused, and its oldest waiting job."""
    with connected(ctx, read_only=True) as app:
        now = app.run_sync(app.backend.now)
        found = app.queues()
    if as_json:
        render.print_json([render.queue_data(q, now) for q in found])
    else:
        render.console().print(render.queues_table(found, now))


def _set_paused(ctx: typer.Context, queue: str, paused: bool, create: bool) -> None:
    check_options(queue=queue)
    with connected(ctx) as app:
        (app.pause_queue if paused else app.resume_queue)(queue, create=create)
    typer.echo(f"queue {queue} {'paused: workers claim nothing from it' if paused else 'resumed'}")


QueueArg = Annotated[str, typer.Argument(metavar="QUEUE", show_default=False)]
CreateOpt = Annotated[bool, typer.Option(
    "--create", help="Pause a queue that has no jobs and no task yet (else refused: a typo "
                     "makes no queue).")]


@cli.command()
def pause(ctx: typer.Context, queue: QueueArg, create: CreateOpt = False) -> None:
    """Stop workers from claiming jobs of a queue (running jobs finish; enqueue still works)."""
    _set_paused(ctx, queue, True, create)


@cli.command()
def resume(ctx: typer.Context, queue: QueueArg, create: CreateOpt = False) -> None:
    """Let workers claim jobs of a paused queue again."""
    _set_paused(ctx, queue, False, create)


@cli.command("delete-queue")
def delete_queue(ctx: typer.Context, queue: QueueArg) -> None:
    """Delete an empty queue: it leaves every listing (refused while it holds jobs)."""
    check_options(queue=queue)
    with connected(ctx) as app:
        app.delete_queue(queue)
    typer.echo(f"queue {queue} deleted")


