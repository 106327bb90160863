"""``conveyor schedules``: list the stored schedules; pause, resume, trigger or delete one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from ..schedules import Schedule
from . import render
from ._root import cli
from .common import JsonOut, connected

schedules_cli = typer.Typer(help="Cron and interval schedules: list, pause, resume, "
                                 "trigger, delete.", invoke_without_command=True)
cli.add_typer(schedules_cli, name="schedules")
NameArg = Annotated[str, typer.Argument(metavar="NAME", show_default=False)]


def schedules_table(found: Sequence[Schedule]) -> Table:
    table = Table("name", "task", "expression", "tz", "next run (UTC)", "last run (UTC)",
                  "outcome", "last job")
    for s in found:
        outcome = Text(s.last_outcome or "-")
        next_run = "paused" if s.paused else render.short_time(s.next_run_at)
        table.add_row(Text(s.name), Text(s.task), Text(s.expression), s.tz, next_run,
                      render.short_time(s.last_run_at), outcome, Text(s.last_job_id or "-"))
    return table


@schedules_cli.callback()
def schedules(ctx: typer.Context, as_json: JsonOut = False) -> None:
    """Every schedule with its expression, time zone, next run, last run and outcome."""
    if ctx.invoked_subcommand is not None:
        return
    with connected(ctx) as app:
        found = app.schedules.list()
    if as_json:
        render.print_json([s.to_json() for s in found])
    else:
        render.console().print(schedules_table(found))


@schedules_cli.command()
def pause(ctx: typer.Context, name: NameArg) -> None:
    """Stop firing a schedule (ticks while paused are not made up)."""
    with connected(ctx) as app:
        app.schedules.pause(name)
    typer.echo(f"schedule {name} paused")


@schedules_cli.command()
def resume(ctx: typer.Context, name: NameArg) -> None:
    """Fire a paused schedule again, from its next tick."""
    with connected(ctx) as app:
        s = app.schedules.resume(name)
    typer.echo(f"schedule {name} resumed; next run {render.iso(s.next_run_at) or 'none'}")


@schedules_cli.command()
def trigger(ctx: typer.Context, name: NameArg) -> None:
    """Enqueue a run now (the next run stays where it is); prints the job id."""
    with connected(ctx) as app:
        handle = app.schedules.trigger(name)
    typer.echo(handle.id)


@schedules_cli.command()
def delete(ctx: typer.Context, name: NameArg) -> None:
    """Delete a schedule (its jobs stay). A schedule declared in code comes back when a
    worker of that code starts: remove it from the code as well."""
    with connected(ctx) as app:
        app.schedules.delete(name)
    typer.echo(f"schedule {name} deleted")
