"""The limits an app declares in code, and the gates each job of it passes at its claim.

Three scopes, each one *limiter* stored beside its queue's jobs:

- a queue's own limits, ``app.queue("emails", rate_limit="10/s", concurrency=20)``,
  stored as the limiter ``queue`` of that queue; every job of the queue passes it;
- a task's, ``@app.task(rate_limit="100/m", rate_key="tenant", concurrency=3)``, stored as
  ``task:<task name>`` in the queue its jobs go to;
- named limiters shared by several tasks, ``app.limiter("openai", "500/m")`` and
  ``@app.task(limiters=["openai"])``. A limiter's budget lives in one queue (it is decided
  inside that queue's claim, one Cluster slot), so the tasks sharing one use one queue.

A job's *gates* are ``[limiter, rate key, concurrency key]`` triples ('' = the limiter's
one shared budget); their canonical JSON is the job's *flow group*. Jobs of one group are
limited alike, so the claim takes turns between groups (round robin) and looks at one job
per group. A job with no gate has no group and costs the claim nothing.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError, InvalidOptionError
from ..serialization import dumps
from .spec import (
    KeySource,
    Limit,
    check_flow_key,
    check_key_source,
    check_name,
    parse_limit,
)

if TYPE_CHECKING:
    from ..task import JobOptions, Task

QUEUE_LIMITER = "queue"


@dataclass(frozen=True, slots=True)
class Limiter:
    """One declared limiter: where it lives, what it allows, how jobs pick their key."""

    name: str  # as stored: "queue", "task:<name>" or the shared limiter's name
    limit: Limit
    queue: str | None = None  # None: a shared limiter not yet bound to a queue
    rate_key: KeySource | None = None
    concurrency_key: KeySource | None = None


class FlowDeclarations:
    """Every limiter an app declared, and the gates of each job it prepares."""

    def __init__(self, on_first: Callable[[], None] | None = None) -> None:
        self.queue_limits: dict[str, Limiter] = {}
        self.shared: dict[str, Limiter] = {}
        self.task_limits: dict[str, tuple[Limiter, ...]] = {}
        self._on_first = on_first  # called at the first declaration (the app's start hook)

    def _declared(self) -> None:
        if self._on_first is not None:
            on_first, self._on_first = self._on_first, None
            on_first()

    # -- declaring ----------------------------------------------------------------------
    def queue(self, queue: str, *, rate_limit: Any = None, concurrency: Any = None,
              rate_key: Any = None, concurrency_key: Any = None) -> Limiter:
        limit = parse_limit(rate_limit, concurrency)
        if limit.empty:
            raise InvalidOptionError(f"queue {queue!r}: give rate_limit= and/or concurrency=")
        limiter = Limiter(QUEUE_LIMITER, limit, queue,
                          check_key_source(rate_key, "rate_key"),
                          check_key_source(concurrency_key, "concurrency_key"))
        self.queue_limits[queue] = limiter
        self._declared()
        return limiter

    def limiter(self, name: str, rate_limit: Any = None, *, concurrency: Any = None,
                queue: str | None = None) -> Limiter:
        check_name(name)
        if name == QUEUE_LIMITER or name.startswith("task"):
            raise InvalidOptionError(f"limiter name {name!r} is reserved")
        limit = parse_limit(rate_limit, concurrency)
        if limit.empty:
            raise InvalidOptionError(f"limiter {name!r}: give a rate and/or concurrency=")
        if name in self.shared:
            raise ConfigurationError(f"a limiter named {name!r} is declared already")
        self.shared[name] = limiter = Limiter(name, limit, queue)
        self._declared()
        return limiter

    def task(self, task: Task[Any, Any], *, rate_limit: Any = None,
             rate_key: Any = None, concurrency: Any = None, concurrency_key: Any = None,
             limiters: Sequence[str] = ()) -> None:
        """Record a task's own limits and the shared limiters it uses (checked now; on
        error nothing is recorded)."""
        task_name, queue = task.name, task.defaults.queue
        limit = parse_limit(rate_limit, concurrency)
        rate_source = check_key_source(rate_key, "rate_key")
        conc_source = check_key_source(concurrency_key, "concurrency_key")
        if rate_source is not None and limit.rate is None:
            raise InvalidOptionError(f"{task_name}: rate_key= needs rate_limit=")
        if conc_source is not None and limit.concurrency is None:
            raise InvalidOptionError(f"{task_name}: concurrency_key= needs concurrency=")
        if isinstance(limiters, str):
            raise InvalidOptionError(f"{task_name}: limiters= takes a list of names")
        used: list[Limiter] = []
        if not limit.empty:
            used.append(Limiter(f"task:{task_name}", limit, None, rate_source, conc_source))
        for name in limiters:
            shared = self.shared.get(name)
            if shared is None:
                known = ", ".join(sorted(self.shared)) or "none declared"
                raise ConfigurationError(
                    f"{task_name}: unknown limiter {name!r} (known: {known}); declare it "
                    "first with app.limiter(name, rate)")
            if shared.queue is not None and shared.queue != queue:
                raise ConfigurationError(
                    f"{task_name}: limiter {name!r} lives in queue {shared.queue!r}, but "
                    f"this task's jobs go to {queue!r}; tasks sharing a limiter share a queue")
            used.append(Limiter(name, shared.limit, queue))
        check_task_key_sources(task, used)
        for lim in used:
            if lim.name in self.shared:
                self.shared[lim.name] = lim  # bound to this queue from now on
        if used:
            self.task_limits[task_name] = tuple(used)
            self._declared()
        else:
            self.task_limits.pop(task_name, None)

    def stored(self) -> list[tuple[str, str, Limit]]:
        """(queue, limiter name, limit) of every declaration bound to a queue, as a worker
        writes them to the backend on start."""
        out = [(q, lim.name, lim.limit) for q, lim in self.queue_limits.items()]
        out += [(lim.queue, lim.name, lim.limit) for lim in self.shared.values()
                if lim.queue is not None]
        return out

    def stored_for_tasks(self, tasks: dict[str, Task[Any, Any]]) -> list[tuple[str, str, Limit]]:
        out = self.stored()
        for name, limiters in self.task_limits.items():
            task = tasks.get(name)
            if task is None:
                continue
            out += [(task.defaults.queue, lim.name, lim.limit) for lim in limiters
                    if lim.name.startswith("task:")]
        return out

    # -- a job's gates ------------------------------------------------------------------
    def group(self, task: Task[Any, Any], opts: JobOptions, args: tuple[Any, ...],
              kwargs: dict[str, Any]) -> str | None:
        """The job's flow group (its gates as canonical JSON), or None without gates."""
        own = self.task_limits.get(task.name, ())
        queue_limiter = self.queue_limits.get(opts.queue)
        if not own and queue_limiter is None:
            if opts.rate_key is not None or opts.concurrency_key is not None:
                raise InvalidOptionError(
                    f"{task.name}: rate_key/concurrency_key given, but neither the task nor "
                    f"queue {opts.queue!r} has limits")
            return None
        call = _Call(task, args, kwargs)
        gates: list[list[str]] = []
        rate_owner = _owner_of(own, queue_limiter, "rate")
        conc_owner = _owner_of(own, queue_limiter, "concurrency")
        if opts.rate_key is not None and rate_owner is None:
            raise InvalidOptionError(f"{task.name}: rate_key given, but no rate limit applies")
        if opts.concurrency_key is not None and conc_owner is None:
            raise InvalidOptionError(
                f"{task.name}: concurrency_key given, but no concurrency cap applies")
        for lim in (*own, *(() if queue_limiter is None else (queue_limiter,))):
            if lim.queue is not None and lim.queue != opts.queue:
                raise InvalidOptionError(
                    f"{task.name}: limiter {lim.name!r} lives in queue {lim.queue!r}, not "
                    f"{opts.queue!r}")
            rkey = opts.rate_key if lim is rate_owner and opts.rate_key is not None \
                else call.key(lim.rate_key, "rate_key")
            ckey = opts.concurrency_key if lim is conc_owner and \
                opts.concurrency_key is not None else call.key(lim.concurrency_key,
                                                                "concurrency_key")
            gates.append([lim.name, rkey, ckey])
        gates.sort()
        return dumps(gates)


def _owner_of(own: Sequence[Limiter], queue_limiter: Limiter | None,
              kind: str) -> Limiter | None:
    """Which limiter a per-job `rate_key` / `concurrency_key` option keys: the task's own
    (if it has that kind of limit), else its queue's."""
    candidates: list[Limiter] = [*own] + ([] if queue_limiter is None else [queue_limiter])
    for lim in candidates:
        if lim.name != QUEUE_LIMITER and not lim.name.startswith("task:"):
            continue
        if (lim.limit.rate if kind == "rate" else lim.limit.concurrency) is not None:
            return lim
    return None


class _Call:
    """One call's arguments, bound to the task's parameters only if a key needs them."""

    def __init__(self, task: Task[Any, Any], args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> None:
        self.task, self.args, self.kwargs = task, args, kwargs
        self._bound: dict[str, Any] | None = None

    def key(self, source: KeySource | None, what: str) -> str:
        if source is None:
            return ""
        if callable(source):
            try:
                value = source(*self.args, **self.kwargs)
            except Exception as exc:
                raise InvalidOptionError(f"{self.task.name}: {what} callable raised {exc!r}") \
                    from None
        else:
            if self._bound is None:
                bound = self.task.signature.inner.bind(*self.args, **self.kwargs)
                bound.apply_defaults()
                self._bound = dict(bound.arguments)
            if source not in self._bound:
                raise InvalidOptionError(
                    f"{self.task.name}: {what} names argument {source!r}, which the call "
                    "does not have")
            value = self._bound[source]
        if value is None:
            return ""
        return check_flow_key(value, f"{self.task.name}: {what}")


def check_task_key_sources(task: Task[Any, Any], limiters: Sequence[Limiter]) -> None:
    """An argument named as a key must be a parameter of the task."""
    params = task.signature.inner.parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    for lim in limiters:
        for source in (lim.rate_key, lim.concurrency_key):
            if isinstance(source, str) and source not in params and not takes_any:
                raise ConfigurationError(
                    f"{task.name}: key argument {source!r} is not a parameter of the task")
