"""``conveyor enqueue``: one job from the command line, optionally followed to its result."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn

from ..app import Conveyor
from ..errors import JobCancelledError, JobFailedError, ResultTimeoutError
from ..jobs import Job, JobState
from . import render
from ._root import cli
from .common import connected, note


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
    with Progress(*columns, console=render.console(stderr=True)) as bar:
        line = bar.add_task(_describe(job), total=100)
        while not job.is_final:
            if deadline is not None and time.monotonic() >= deadline:
                raise ResultTimeoutError(job.id, timeout or 0.0, job.state.value)
            time.sleep(0.2)
            job = app.get_job(job.id).job
            done = 100.0 if job.state is JobState.COMPLETED else render.percent(job.progress)
            bar.update(line, completed=done or 0, description=_describe(job))
    return job


@cli.command()
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
            note(f"enqueued {job.task} on queue {job.queue} ({job.state.value})")
        else:
            note(f"a job with key {job.key!r} exists already: returned it, not a new one "
                  f"({job.state.value})")
        if not wait:
            return
        try:
            job = _follow(app, job, timeout_wait)
        except KeyboardInterrupt:
            note(f"stopped waiting; job {job.id} carries on")
            raise typer.Exit(130) from None
    if job.state is JobState.FAILED:
        raise JobFailedError(job.id, job.last_error)
    if job.state is JobState.CANCELLED:
        raise JobCancelledError(job.id)
    typer.echo(render.compact(job.result))
