"""``conveyor limits``: the flow-control limiters with their use per key and the jobs they
hold back; change one at runtime (``set``) or drop the change (``reset``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from ..errors import InvalidOptionError
from ..flow.api import OFF
from ..flow.view import limit_data
from . import render
from ._root import cli
from .common import JsonOut, connected

limits_cli = typer.Typer(help="Rate limits and concurrency caps: list them with their use, "
                              "change one at runtime, reset it.", invoke_without_command=True)
cli.add_typer(limits_cli, name="limits")
NameArg = Annotated[str, typer.Argument(
    metavar="NAME", show_default=False,
    help="'queue' (a queue's own limits), 'task:<task>' or a shared limiter's name.")]
InQueue = Annotated[str | None, typer.Option(
    "--queue", "-q", help="The limiter's queue (when the name is stored in several).")]
KEYS_SHOWN = 10  # per limiter in the table; --json has them all


def _spec(rate: Any, concurrency: Any) -> str:
    parts = [f"rate {rate}" if rate else "", f"concurrency {concurrency}" if concurrency else ""]
    return ", ".join(p for p in parts if p) or "no limit"


def describe(data: dict[str, Any]) -> str:
    """One limiter's limits in force, saying whether a runtime change is behind them."""
    text = f"{data['name']} (queue {data['queue']}): {_spec(data['rate'], data['concurrency'])}"
    declared = data["declared"] or {}
    if data["override"] is not None:
        was = _spec(declared.get("rate"), declared.get("concurrency"))
        text += f" (changed at runtime; declared: {was})"
    return text


def limits_table(found: Sequence[dict[str, Any]]) -> Table:
    table = Table("queue", "limiter", "scope", "rate", "concurrency", "key", "active",
                  "starts", "blocked", "paused until")
    for d in found:
        limit = [Text(d["queue"]), Text(d["name"]), d["scope"], d["rate"] or "-",
                 str(d["concurrency"] or "-")]
        if d["override"] is not None:
            limit[1].append(" *", style="bold")
        keys = d["keys"] or [{"key": "", "active": 0, "starts": 0, "blocked": 0,
                              "paused_until": None}]
        for k in keys[:KEYS_SHOWN]:
            table.add_row(*limit, Text(k["key"] or "(all)"), str(k["active"]), str(k["starts"]),
                          str(k["blocked"]), k["paused_until"] or "-")
            limit = ["", "", "", "", ""]
        if len(keys) > KEYS_SHOWN:
            rest = keys[KEYS_SHOWN:]
            table.add_row(*limit, Text(f"(+{len(rest)} more keys)", style="dim"),
                          str(sum(k["active"] for k in rest)), str(sum(k["starts"] for k in rest)),
                          str(sum(k["blocked"] for k in rest)), "")
    if any(d["override"] is not None for d in found):
        table.caption = "* changed at runtime ('conveyor limits reset NAME' restores the " \
                        "declared limit)"
    return table


@limits_cli.callback()
def limits(ctx: typer.Context, queue: InQueue = None, as_json: JsonOut = False) -> None:
    """Every limiter: its limits in force, and per key the jobs active, the starts in the
    current window and the waiting jobs it holds back."""
    if ctx.invoked_subcommand is not None:
        return
    with connected(ctx, read_only=True) as app:
        found = [limit_data(info) for info in app.limits.list()
                 if queue is None or info.queue == queue]
    if as_json:
        render.print_json(found)
    elif not found:
        typer.echo("no limiter stored (a worker stores its app's declared limits when it "
                   "starts)")
    else:
        render.console().print(limits_table(found))


def _concurrency(value: str | None) -> int | str | None:
    if value is None or value == OFF:
        return value
    if not value.strip().isdigit():
        raise InvalidOptionError(f"--concurrency must be a positive integer or 'off', "
                                 f"not {value!r}")
    return int(value)


@limits_cli.command("set")
def set_limit(
    ctx: typer.Context,
    name: NameArg,
    rate: Annotated[str | None, typer.Option(
        "--rate", help="Starts per window: 10/s, 500/m, 5/10s; 'off' removes the rate.")] = None,
    concurrency: Annotated[str | None, typer.Option(
        "--concurrency", "-c", help="Jobs active at once; 'off' removes the cap.")] = None,
    queue: InQueue = None,
) -> None:
    """Change a limiter now (the next claim applies it; a deploy keeps the change until
    reset). Parts not given stay as they are."""
    if rate is None and concurrency is None:
        ctx.fail("give --rate and/or --concurrency")
    cap = _concurrency(concurrency)
    with connected(ctx) as app:
        changed = app.limits.set(name, queue=queue, rate_limit=rate, concurrency=cap)
    typer.echo(describe(limit_data(changed)))


@limits_cli.command()
def reset(ctx: typer.Context, name: NameArg, queue: InQueue = None) -> None:
    """Drop a runtime change: the limit declared in code is in force again."""
    with connected(ctx) as app:
        done = app.limits.reset(name, queue=queue)
    typer.echo(describe(limit_data(done)))
