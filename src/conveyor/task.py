"""A registered task and the options of one enqueue.

``@app.task(...)`` turns a function into a `Task`; ``task.enqueue(...)`` stores a job and
returns a handle, keeping the function's parameter types for type checkers;
``task.options(delay=..., key=...)`` returns a copy with per-call options.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, Literal, ParamSpec, TypeVar

from . import backoff as backoff_mod
from .backends.base import NewJob
from .dedup import Dedup, check_dedup
from .errors import ConfigurationError, InvalidOptionError, PayloadTooLargeError
from .flow.spec import check_flow_key
from .ids import new_job_id
from .serialization import dumps, dumps_checked

if TYPE_CHECKING:
    from .app import Conveyor
    from .handle import JobHandle

P = ParamSpec("P")
R = TypeVar("R")
Executor = Literal["async", "thread", "process"]
MAX_KEY_LENGTH = 255
MAX_QUEUE_NAME = 100
# What `check_options` takes; every other option of `task.options` belongs to a plugin.
CORE_OPTIONS = ("queue", "priority", "attempts", "max_stalls", "timeout", "backoff", "delay",
                "run_at", "key", "meta", "rate_key", "concurrency_key", "dedup", "expires")


@dataclasses.dataclass(frozen=True, slots=True)
class JobOptions:
    """Per-job settings; a task's defaults, overridden per call by ``.options()``."""

    queue: str = "default"
    priority: int = 0
    attempts: int = 3
    max_stalls: int = 1
    timeout: float | None = None
    backoff: dict[str, Any] = dataclasses.field(
        default_factory=lambda: dict(backoff_mod.DEFAULT_BACKOFF))
    delay: float = 0.0
    run_at: dt.datetime | None = None
    key: str | None = None
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    rate_key: str | None = None  # this job's key for its rate limit (conveyor/flow)
    concurrency_key: str | None = None
    dedup: Dedup | None = None  # conveyor/dedup.py
    expires: float | None = None  # seconds after enqueue: not started by then -> cancelled


def check_options(
    *,
    queue: Any = None,
    priority: Any = None,
    attempts: Any = None,
    max_stalls: Any = None,
    timeout: Any = None,
    backoff: Any = None,
    delay: Any = None,
    run_at: Any = None,
    key: Any = None,
    meta: Any = None,
    rate_key: Any = None,
    concurrency_key: Any = None,
    dedup: Any = None,
    expires: Any = None,
) -> dict[str, Any]:
    """Validate option values (None = not given) into JobOptions fields."""
    out: dict[str, Any] = {}
    if queue is not None:
        out["queue"] = _check_queue(queue)
    if priority is not None:
        out["priority"] = _check_int(priority, -1_000_000, 1_000_000,
                                     "priority must be an integer between -1000000 and 1000000")
    if attempts is not None:
        out["attempts"] = _check_int(attempts, 1, 1000,
                                     "attempts must be an integer between 1 and 1000")
    if max_stalls is not None:
        out["max_stalls"] = _check_int(max_stalls, 0, 1000,
                                       "max_stalls must be an integer between 0 and 1000")
    if timeout is not None:
        out["timeout"] = _check_timeout(timeout)
    if backoff is not None:
        out["backoff"] = backoff_mod.normalize(backoff)
    if delay is not None:
        out["delay"] = _seconds(delay, "delay")
    if run_at is not None:
        out["run_at"] = _check_run_at(run_at)
    if key is not None:
        out["key"] = _check_key(key)
    if meta is not None:
        out["meta"] = _check_meta(meta)
    out.update(_check_flow_keys(rate_key=rate_key, concurrency_key=concurrency_key))
    out.update(_check_once(dedup, expires))
    return out


def _check_queue(queue: Any) -> str:
    if not isinstance(queue, str) or not queue or len(queue) > MAX_QUEUE_NAME \
            or not queue.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise InvalidOptionError(
            f"bad queue name {queue!r}: 1-100 letters, digits, '-', '_' or '.'")
    return queue


def _check_int(value: Any, low: int, high: int, message: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidOptionError(message)
    return value


def _check_timeout(timeout: Any) -> float:
    seconds = _seconds(timeout, "timeout")
    if seconds <= 0:
        raise InvalidOptionError("timeout must be > 0 seconds")
    return seconds


def _check_once(dedup: Any, expires: Any) -> dict[str, Any]:
    """dedup= and expires= (conveyor/dedup.py)."""
    out: dict[str, Any] = {}
    if dedup is not None:
        out["dedup"] = check_dedup(dedup)
    if expires is not None:
        out["expires"] = _seconds(expires, "expires")
        if out["expires"] <= 0:
            raise InvalidOptionError("expires must be > 0 seconds")
    return out


def _check_run_at(run_at: Any) -> dt.datetime:
    if not isinstance(run_at, dt.datetime):
        raise InvalidOptionError("run_at must be a datetime")
    if run_at.tzinfo is None:
        raise InvalidOptionError("run_at must be timezone-aware (e.g. datetime.now(UTC))")
    return run_at


def _check_key(key: Any) -> str:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidOptionError(f"key must be a string of 1 to {MAX_KEY_LENGTH} characters")
    if any(c < " " or "\x7f" <= c <= "\x9f" or c in "\u2028\u2029" for c in key):
        # keys are shown in logs, the dashboard and its live streams: no line breaks
        raise InvalidOptionError("key must not contain control characters or line breaks")
    return key


def _check_meta(meta: Any) -> dict[str, Any]:
    if not isinstance(meta, dict):
        raise InvalidOptionError("meta must be a dict")
    dumps_checked(meta, "meta")
    return meta


def _check_flow_keys(**keys: Any) -> dict[str, str]:
    return {name: check_flow_key(value, name) for name, value in keys.items()
            if value is not None}


def _seconds(value: Any, what: str) -> float:
    if isinstance(value, dt.timedelta):
        value = value.total_seconds()
        if value < 0:
            raise InvalidOptionError(f"{what} must not be negative")
    return backoff_mod.parse_duration(value, what)


class Task(Generic[P, R]):
    """A function registered with an app, plus the options its jobs are enqueued with."""

    def __init__(
        self,
        app: Conveyor,
        fn: Callable[P, Any],
        name: str,
        options: JobOptions,
        executor: Executor,
        non_retryable: tuple[type[BaseException], ...] = (),
        exposed: bool = False,
    ) -> None:
        from .signature import Signature

        self.app = app
        self.fn = fn
        self.name = name
        self.defaults = options
        self.executor = executor
        self.non_retryable = non_retryable
        self.exposed = exposed  # may be enqueued over HTTP
        self.is_async = inspect.iscoroutinefunction(fn)
        self.signature = Signature(fn, name)
        self._backoff_json = dumps(options.backoff)  # the same for every job: encode once
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __repr__(self) -> str:
        return f"<Task {self.name} queue={self.defaults.queue} executor={self.executor}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        """Call the function directly, in this process, without a job."""
        return self.fn(*args, **kwargs)

    def options(
        self,
        *,
        queue: str | None = None,
        priority: int | None = None,
        attempts: int | None = None,
        max_stalls: int | None = None,
        timeout: float | str | dt.timedelta | None = None,
        backoff: Any = None,
        delay: float | str | dt.timedelta | None = None,
        run_at: dt.datetime | None = None,
        key: str | None = None,
        meta: dict[str, Any] | None = None,
        rate_key: str | int | None = None,
        concurrency_key: str | int | None = None,
        dedup: Dedup | None = None,
        expires: float | str | dt.timedelta | None = None,
        **extra: Any,
    ) -> Task[P, R]:
        """A copy of this task whose next enqueues use these options.

        Options the core does not know go to the installed plugins, which validate them
        and keep them in ``meta`` (e.g. ``webhook="https://..."`` with webhooks enabled).
        """
        changes = check_options(queue=queue, priority=priority, attempts=attempts,
                                max_stalls=max_stalls, timeout=timeout, backoff=backoff,
                                delay=delay, run_at=run_at, key=key, meta=meta,
                                rate_key=rate_key, concurrency_key=concurrency_key,
                                dedup=dedup, expires=expires)
        if extra:
            given = {k: v for k, v in extra.items() if v is not None}
            if given:
                changes["meta"] = {**changes.get("meta", self.defaults.meta),
                                   **self.app.plugins.meta_for(given)}
        copy = object.__new__(Task)
        copy.__dict__.update(self.__dict__)
        copy.defaults = dataclasses.replace(self.defaults, **changes)
        copy._backoff_json = dumps(copy.defaults.backoff)
        return copy

    def prepare(self, *args: P.args, **kwargs: P.kwargs) -> NewJob:
        """Validate one call into a job ready to store (for ``app.enqueue_many``)."""
        opts = self.defaults
        call_args, call_kwargs = self.signature.encode(args, kwargs)
        args_json = dumps_checked(call_args, f"{self.name} arguments")
        kwargs_json = dumps_checked(call_kwargs, f"{self.name} arguments")
        size = len(args_json) + len(kwargs_json)
        if size > self.app.max_payload_bytes:
            raise PayloadTooLargeError(size, self.app.max_payload_bytes)
        new = NewJob(
            id=new_job_id(),
            queue=opts.queue,
            task=self.name,
            args_json=args_json,
            kwargs_json=kwargs_json,
            priority=opts.priority,
            key=opts.key,
            delay_ms=round(opts.delay * 1000),
            run_at_ms=None if opts.run_at is None else round(opts.run_at.timestamp() * 1000),
            max_attempts=opts.attempts,
            max_stalls=opts.max_stalls,
            timeout=opts.timeout,
            backoff_json=self._backoff_json,
            meta_json=dumps(opts.meta) if opts.meta else "{}",
            flow=self._flow_group(opts, args, kwargs),
        )
        if opts.dedup is None and opts.expires is None:
            return new
        return dataclasses.replace(new, **self._once(opts, args, kwargs))

    def _once(self, opts: JobOptions, args: tuple[Any, ...],
              kwargs: dict[str, Any]) -> dict[str, Any]:
        """A call's dedup spec and expiry (conveyor/dedup.py): a debounced job is due
        its quiet time after the enqueue."""
        out: dict[str, Any] = {}
        delay = opts.delay
        if opts.dedup is not None:
            spec = opts.dedup.spec(self.name, args, kwargs, lambda: self._by_name(args, kwargs))
            out["dedup"] = spec
            if spec.mode == "debounce":
                out["delay_ms"], out["run_at_ms"] = spec.window_ms, None
                delay = spec.window_ms / 1000
        if opts.expires is not None:
            if delay >= opts.expires:
                raise InvalidOptionError(f"{self.name}: expires ({opts.expires:g}s) must be "
                                         f"later than the job's delay ({delay:g}s)")
            out["expires_ms"] = round(opts.expires * 1000)
        return out

    def _by_name(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The call's arguments by parameter name (a **kwargs parameter's spread out)."""
        bound = self.signature.inner.bind(*args, **kwargs)
        bound.apply_defaults()
        named = dict(bound.arguments)
        for name, param in self.signature.inner.parameters.items():
            if param.kind is inspect.Parameter.VAR_KEYWORD:
                named.update(named.pop(name, {}))
        return named

    def _flow_group(self, opts: JobOptions, args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> str | None:
        group = self.app.flow.group(self, opts, args, kwargs)
        if group is not None and not self.app.backend.capabilities.flow_control:
            raise ConfigurationError(f"{self.name}: this backend does not support flow "
                                     "control (rate limits, concurrency caps) yet")
        return group

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle[R]:
        """Store a job for this call and return its handle (sync)."""
        return self.app.enqueue_many([self.prepare(*args, **kwargs)])[0]

    async def aenqueue(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle[R]:
        """Store a job for this call and return its handle (async)."""
        return (await self.app.aenqueue_many([self.prepare(*args, **kwargs)]))[0]

    async def run_inline(self, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """Run the function on stored arguments (used by the worker's async executor)."""
        call_args, call_kwargs = self.signature.decode(args, kwargs)
        result = self.fn(*call_args, **call_kwargs)
        if asyncio.iscoroutine(result):
            result = await result
        return result
