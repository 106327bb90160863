"""`conveyor flow ID`: a flow's state and its jobs with their dependencies; `--cancel`
cancels what has not run."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..flows.view import flow_data, flow_state, waiting_for
from . import render
from ._root import cli, fail
from .common import JsonOut, connected


@cli.command()
def flow(
    ctx: typer.Context,
    flow_id: Annotated[str, typer.Argument(help="The flow's id (job.flow_id).")],
    cancel: Annotated[bool, typer.Option(
        "--cancel", help="Cancel what has not run (running jobs get a cancel request).")] = False,
    as_json: JsonOut = False,
) -> None:
    """A flow (chain, group, graph): its jobs in the order added, their states and what
    each waits for."""
    with connected(ctx, read_only=not cancel) as app:
        if cancel and app.get_flow(flow_id):
            app.cancel_flow(flow_id)
        jobs = app.get_flow(flow_id)
    if not jobs:
        fail(f"no flow {flow_id!r}", 2)
    if as_json:
        render.print_json(flow_data(flow_id, jobs))
        return
    short = {job.id: job.id[-12:] for job in jobs}
    table = Table(title=f"flow {flow_id}: {flow_state(jobs)}", title_justify="left")
    for column in ("id", "task", "state", "after", "waiting for"):
        table.add_column(column)
    for job in jobs:
        after = ", ".join(short.get(p, p[-12:]) + ("" if policy == "fail" else f" ({policy})")
                          for p, policy in job.parents.items())
        table.add_row(short[job.id], job.task, render.state_text(job.state), after,
                      waiting_for(job) or "")
    render.console().print(table)
