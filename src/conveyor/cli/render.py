"""How the CLI shows things: rich tables and panels for people, plain JSON for scripts.

Every value that comes from a job (arguments, results, errors, logs) is printed as plain
`Text`, never as rich markup, so a job argument like ``"[bold]"`` prints as itself.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..backends.base import Capabilities, QueueInfo, WorkerInfo
from ..jobs import Job, JobState

_TIME_FIELDS = ("created_at", "scheduled_at", "started_at", "finished_at")
_STATE_STYLES = {
    JobState.WAITING: "cyan", JobState.DELAYED: "blue", JobState.ACTIVE: "yellow",
    JobState.COMPLETED: "green", JobState.FAILED: "red", JobState.CANCELLED: "magenta",
}


def console(stderr: bool = False) -> Console:
    """A console on the current stdout/stderr; wide when piped, so ids never wrap."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else 200
    return Console(file=stream, width=width, highlight=False, soft_wrap=False)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


# -- small values --------------------------------------------------------------------------
def iso(ms: int | None) -> str | None:
    """A backend timestamp (ms since the epoch) as an ISO 8601 datetime in UTC."""
    if ms is None:
        return None
    moment = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def short_time(ms: int | None) -> str:
    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def age(ms: int | None, now: int) -> str:
    """How long ago `ms` was, like ``45s``, ``12m``, ``3h``, ``2d``."""
    if ms is None:
        return "-"
    seconds = max(now - ms, 0) / 1000
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def percent(progress: Any) -> float | None:
    """Progress as a percentage: a bare number, or a dict with a numeric "percent"."""
    if isinstance(progress, dict):
        progress = progress.get("percent")
    if isinstance(progress, bool) or not isinstance(progress, int | float):
        return None
    return max(0.0, min(100.0, float(progress)))


def error_line(error: dict[str, Any] | None, limit: int | None = None) -> str:
    if not error:
        return ""
    line = f"{error.get('type')}: {error.get('message')}".replace("\n", " ")
    if limit is not None and len(line) > limit:
        line = line[: limit - 1] + "…"
    return line


def state_text(state: JobState) -> Text:
    return Text(state.value, style=_STATE_STYLES.get(state, ""))


# -- JSON shapes ---------------------------------------------------------------------------
def job_data(job: Job) -> dict[str, Any]:
    data = dataclasses.asdict(job)
    data["state"] = job.state.value
    for name in _TIME_FIELDS:
        data[name] = iso(data[name])
    for entry in [*data["errors"], *data["logs"]]:
        if isinstance(entry.get("at"), int):
            entry["at"] = iso(entry["at"])
    return data


def queue_data(queue: QueueInfo, now: int) -> dict[str, Any]:
    return {
        "name": queue.name,
        "paused": queue.paused,
        "counts": {state.value: queue.counts.get(state, 0) for state in JobState},
        "oldest_waiting_at": iso(queue.oldest_waiting_at),
        "oldest_waiting_age_seconds": None if queue.oldest_waiting_at is None
        else max(now - queue.oldest_waiting_at, 0) / 1000,
    }


def is_stale(worker: WorkerInfo, now: int) -> bool:
    return worker.is_stale(now)


def worker_data(worker: WorkerInfo, now: int) -> dict[str, Any]:
    data = dataclasses.asdict(worker)
    data["queues"] = list(worker.queues)
    data["started_at"] = iso(worker.started_at)
    data["last_seen_at"] = iso(worker.last_seen_at)
    data["stale"] = is_stale(worker, now)
    return data


# -- tables ----------------------------------------------------------------------------------
def jobs_table(jobs: Sequence[Job]) -> Table:
    table = Table("id", "task", "queue", "state", "attempt", "created (UTC)", "last error",
                  title=f"{len(jobs)} job(s)", title_justify="left")
    for job in jobs:
        table.add_row(job.id, Text(job.task), Text(job.queue), state_text(job.state),
                      f"{job.attempt}/{job.max_attempts}", short_time(job.created_at),
                      Text(error_line(job.last_error, 60), style="red"))
    return table


def queues_table(queues: Sequence[QueueInfo], now: int) -> Table:
    table = Table("queue", "paused", *(s.value for s in JobState), "oldest waiting")
    for queue in queues:
        counts = [str(queue.counts.get(state, 0)) for state in JobState]
        paused = Text("paused", style="bold yellow") if queue.paused else Text("no")
        table.add_row(Text(queue.name), paused, *counts, age(queue.oldest_waiting_at, now))
    return table


def workers_table(workers: Sequence[WorkerInfo], now: int) -> Table:
    """One row per worker process; the processes of one supervisor (-p N) under a row
    for their group, which sums them up as one logical worker."""
    table = Table("id", "host", "pid", "queues", "concurrency", "in flight", "started (UTC)",
                  "last seen", "status")
    for group, members in _by_group(workers):
        if group is not None:
            stale = sum(is_stale(w, now) for w in members)
            table.add_row(
                Text(f"{group} ({len(members)} processes)", style="bold"), Text(members[0].host),
                "-", Text(",".join(members[0].queues)), str(sum(w.concurrency for w in members)),
                str(sum(w.in_flight for w in members)),
                short_time(min((w.started_at for w in members if w.started_at), default=None)),
                f"{age(max((w.last_seen_at or 0) for w in members) or None, now)} ago",
                Text(f"{stale} stale", style="bold red") if stale else Text("ok", "green"))
        for w in members:
            status = Text("stale", style="bold red") if is_stale(w, now) else Text("ok", "green")
            name = Text(("  " if group is not None else "") + w.id)
            table.add_row(name, Text(w.host), str(w.pid), Text(",".join(w.queues)),
                          str(w.concurrency), str(w.in_flight), short_time(w.started_at),
                          f"{age(w.last_seen_at, now)} ago", status)
    return table


def _by_group(workers: Sequence[WorkerInfo]) -> list[tuple[str | None, list[WorkerInfo]]]:
    """Workers in listing order, the processes of a group together (a lone worker is a
    group of None)."""
    groups: dict[str, list[WorkerInfo]] = {}
    out: list[tuple[str | None, list[WorkerInfo]]] = []
    for w in workers:
        if w.group is None:
            out.append((None, [w]))
        elif w.group in groups:
            groups[w.group].append(w)
        else:
            groups[w.group] = [w]
            out.append((w.group, groups[w.group]))
    return out


# -- one job ---------------------------------------------------------------------------------
def _fields(rows: Iterable[tuple[str, str | Text]]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for name, value in rows:
        grid.add_row(name, value if isinstance(value, Text) else Text(value))
    return grid


def _overview(job: Job) -> list[tuple[str, str | Text]]:
    state = state_text(job.state)
    if job.cancel_requested and not job.is_final:
        state.append(" (cancel requested)", style="magenta")
    return [
        ("state", state),
        ("task", job.task),
        ("queue", job.queue),
        ("attempt", f"{job.attempt} of {job.max_attempts}"),
        ("stalls", f"{job.stalls} of {job.max_stalls} allowed"),
        ("args", compact(job.args)),
        ("kwargs", compact(job.kwargs)),
        ("options", compact({"priority": job.priority, "key": job.key,
                             "timeout": job.timeout, "backoff": job.backoff,
                             "meta": job.meta})),
        ("progress", compact(job.progress)),
        ("result", compact(job.result)),
        ("worker", job.worker or "-"),
        *((name.removesuffix("_at"), iso(getattr(job, name)) or "-") for name in _TIME_FIELDS),
    ]


def _errors(job: Job) -> RenderableType:
    parts: list[RenderableType] = []
    for number, error in enumerate(job.errors, 1):
        head = Text(f"#{number} attempt {error.get('attempt')} ", style="bold")
        head.append(error_line(error), style="red")
        if isinstance(error.get("at"), int):
            head.append(f"  at {iso(error['at'])}")
        if error.get("worker"):
            head.append(f"  on {error['worker']}")
        parts.append(head)
        if error.get("traceback"):
            parts.append(Text(str(error["traceback"]).rstrip(), style="dim"))
    return Group(*parts) if parts else Text("none")


def _logs(job: Job) -> RenderableType:
    lines = [Text(f"{iso(entry.get('at'))} [attempt {entry.get('attempt')}] "
                  f"{entry.get('message')}") for entry in job.logs]
    return Group(*lines) if lines else Text("none")


def job_detail(job: Job) -> RenderableType:
    return Group(
        Panel(_fields(_overview(job)), title=f"job {job.id}", title_align="left",
              expand=False),
        Panel(_errors(job), title=f"errors ({len(job.errors)})",
              title_align="left", expand=False),
        Panel(_logs(job), title=f"logs ({len(job.logs)})", title_align="left",
              expand=False),
    )


# -- summaries -------------------------------------------------------------------------------
def capabilities_data(caps: Capabilities) -> dict[str, bool]:
    return dataclasses.asdict(caps)


def info_panel(data: dict[str, Any]) -> Panel:
    caps = ", ".join(name for name, on in data["capabilities"].items() if on) or "none"
    queues = [
        Text(f"  {q['name']}: " + ", ".join(f"{n} {s}" for s, n in q["counts"].items() if n)
             + (" (paused)" if q["paused"] else ""))
        for q in data["queues"]
    ]
    rows: list[tuple[str, str | Text]] = [
        ("version", data["version"]),
        ("backend", data["url"]),
        ("capabilities", caps),
        ("app", data["app"] or "- (pass --app or set CONVEYOR_APP to see its tasks)"),
        ("tasks", ", ".join(data["tasks"]) or "-"),
        ("workers", f"{data['workers']['live']} live, {data['workers']['stale']} stale"),
    ]
    body = Group(_fields(rows), Text("queues", style="bold"), *(queues or [Text("none yet")]))
    return Panel(body, title="conveyor", title_align="left", expand=False)


def dev_panel(url: str, app_path: str, queues: Sequence[str], tasks: Sequence[str],
              example_task: str, services: Sequence[tuple[str, str]] = (),
              activate: str | None = None) -> Panel:
    exports = f"export CONVEYOR_APP={app_path} CONVEYOR_URL={url}"
    text = Text()
    text.append("Running ", style="bold")
    text.append("a worker and maintenance (rescue of stalled jobs, retention)\n")
    text.append(f"  backend  {url}\n  queues   {', '.join(queues)}\n")
    text.append(f"  tasks    {', '.join(tasks) or '-'}\n")
    for label, line in services:
        text.append(f"  {label:<8} {line}\n")
    text.append("\n")
    text.append("Try, in another terminal in this directory:\n", style="bold")
    if activate:
        text.append(f"  {activate}\n")
    text.append(f"  {exports}\n")
    text.append(f"  conveyor enqueue {example_task} --wait\n")
    text.append("  conveyor queues\n  conveyor jobs --state failed\n  conveyor job JOB_ID\n\n")
    text.append("Ctrl-C stops gracefully (running jobs get 30 s to finish).", style="dim")
    return Panel(text, title="conveyor dev", title_align="left", expand=False)
