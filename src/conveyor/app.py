"""The app object: a task registry bound to one backend, with sync and async twins of
every producer and operator call.

    app = Conveyor("sqlite:///conveyor.db")      # or CONVEYOR_URL, or this default

    @app.task(queue="reports", attempts=5, backoff="30s,2m,10m", timeout=60)
    async def generate_report(user_id: int, days: int = 30) -> dict: ...

    job = generate_report.enqueue(user_id=1, days=90)
    job.result(timeout=60)
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar, overload

from . import operations, queues
from .backends import backend_for
from .backends.base import Backend, JobFilter, NewJob, QueueInfo, Retention
from .dedup import Dedup
from .errors import (
    ConfigurationError,
    JobNotFoundError,
    JobRemovedError,
    UnknownTaskError,
)
from .flow.declare import FlowDeclarations
from .flows import Flow
from .handle import JobHandle
from .jobs import Job
from .middleware import Hook, Hooks
from .plugins import LeaderDuty, Plugin, Plugins
from .serialization import DEFAULT_MAX_PAYLOAD_BYTES
from .task import CORE_OPTIONS, Executor, JobOptions, Task, check_options

if TYPE_CHECKING:
    from .flow.api import Limits
    from .schedules.api import Schedules

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
H = TypeVar("H", bound=Hook)
PluginT = TypeVar("PluginT", bound=Plugin)
DEFAULT_URL = "sqlite:///conveyor.db"


class Conveyor:
    """Tasks plus the backend their jobs live in."""

    def __init__(
        self,
        url: str | None = None,
        *,
        default_queue: str = "default",
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        retention: Retention | None = None,
    ) -> None:
        self.url = url or os.environ.get("CONVEYOR_URL") or DEFAULT_URL
        self.backend: Backend = backend_for(self.url)
        check_options(queue=default_queue)
        self.default_queue = default_queue
        if max_payload_bytes <= 0:
            raise ConfigurationError("max_payload_bytes must be positive")
        self.max_payload_bytes = max_payload_bytes
        self.retention = retention or Retention()
        self.tasks: dict[str, Task[Any, Any]] = {}
        # Run by whichever worker holds the maintenance lock (see worker/keeper.py): how
        # plugins do what one process at a time must do, without the worker knowing them.
        self.leader_duties: list[LeaderDuty] = []
        self.hooks = Hooks()
        self.plugins = Plugins(CORE_OPTIONS)
        self.flow = FlowDeclarations(on_first=self._store_limits_on_worker_start)
        self._open_lock = threading.Lock()
        self._opened = False
        self._portal: _Portal | None = None

    def __repr__(self) -> str:
        return f"<Conveyor {self.url} tasks={len(self.tasks)}>"

    # -- registering tasks --------------------------------------------------------------
    @overload
    def task(self, fn: Callable[P, Awaitable[R]], /) -> Task[P, R]: ...

    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...

    @overload
    def task(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = ...,
        queue: str | None = ...,
        priority: int = ...,
        attempts: int = ...,
        max_stalls: int = ...,
        timeout: float | str | None = ...,
        backoff: Any = ...,
        executor: Executor | None = ...,
        non_retryable: Sequence[type[BaseException]] = ...,
        expose: bool = ...,
        rate_limit: str | None = ...,
        rate_key: str | Callable[..., Any] | None = ...,
        concurrency: int | None = ...,
        concurrency_key: str | Callable[..., Any] | None = ...,
        limiters: Sequence[str] = ...,
        dedup: Dedup | None = ...,
        expires: float | str | None = ...,
    ) -> _TaskDecorator: ...

    def task(
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        queue: str | None = None,
        priority: int = 0,
        attempts: int = 3,
        max_stalls: int = 1,
        timeout: float | str | None = None,
        backoff: Any = None,
        executor: Executor | None = None,
        non_retryable: Sequence[type[BaseException]] = (),
        expose: bool = False,
        rate_limit: str | None = None,
        rate_key: str | Callable[..., Any] | None = None,
        concurrency: int | None = None,
        concurrency_key: str | Callable[..., Any] | None = None,
        limiters: Sequence[str] = (),
        dedup: Dedup | None = None, expires: float | str | None = None,
    ) -> Any:
        """Register a function as a task (usable bare, ``@app.task``, or with options).

        expose=True lets the HTTP API enqueue it; other tasks cannot be called over HTTP.
        rate_limit ("100/m"), concurrency, their keys (an argument name or a callable) and
        shared `limiters` are flow control, enforced across every worker (conveyor/flow).
        dedup=Dedup(...) and expires= (not started by then: cancelled): conveyor/dedup.py.
        """

        def register(func: Callable[..., Any]) -> Task[Any, Any]:
            task_name = name or func.__name__
            if task_name in self.tasks and self.tasks[task_name].fn is not func:
                raise ConfigurationError(
                    f"a task named {task_name!r} is registered already; pass name= to tell "
                    "them apart")
            checked = check_options(queue=queue or self.default_queue, priority=priority,
                                    attempts=attempts, max_stalls=max_stalls, timeout=timeout,
                                    backoff=backoff, dedup=dedup, expires=expires)
            is_async = asyncio.iscoroutinefunction(func)
            chosen: Executor = executor or ("async" if is_async else "thread")
            if chosen not in ("async", "thread", "process"):
                raise ConfigurationError(f"unknown executor {chosen!r}")
            if chosen == "async" and not is_async:
                raise ConfigurationError(f"{task_name}: executor='async' needs an async def")
            if chosen == "process" and "<locals>" in func.__qualname__:
                raise ConfigurationError(
                    f"{task_name}: process-executor tasks must be defined at module level, "
                    "so the child process can import them")
            task: Task[Any, Any] = Task(self, func, task_name, JobOptions(**checked), chosen,
                                        tuple(non_retryable), exposed=expose)
            self.flow.task(task, rate_limit=rate_limit, rate_key=rate_key,
                           concurrency=concurrency, concurrency_key=concurrency_key,
                           limiters=limiters)
            self.tasks[task_name] = task
            return task

        if fn is not None:
            return register(fn)
        return register

    # -- schedules (conveyor.schedules does the work) -----------------------------------
    def cron(self, expression: str, *, name: str | None = None, tz: str | None = None,
             args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None,
             **options: Any) -> Callable[[T], T]:
        """Run a task on a cron expression: ``@app.cron("0 9 * * *", tz="Europe/Lisbon")``
        above ``@app.task``; stackable (name= tells them apart). Options: start, end,
        misfire, catch_up, misfire_grace, overlap, jitter, expires, paused."""
        from .schedules.declare import cron

        return cron(self, expression, name=name, tz=tz, args=args, kwargs=kwargs, **options)

    def schedule(self, name: str, task: Task[Any, Any] | str, **options: Any) -> Any:
        """Declare a schedule: ``app.schedule("cleanup", cleanup, every="30s", kwargs={})``."""
        from .schedules.declare import schedule

        return schedule(self, name, task, **options)

    @property
    def schedules(self) -> Schedules:
        """List, create, change, pause, resume, trigger and delete stored schedules."""
        from .schedules.declare import schedules_of

        return schedules_of(self).schedules

    # -- flow control (conveyor/flow does the work) ------------------------------------
    def limiter(self, name: str, rate_limit: str | None = None, *,
                concurrency: int | None = None, queue: str | None = None) -> str:
        """Declare a limiter several tasks share: ``app.limiter("openai", "500/m")`` then
        ``@app.task(limiters=["openai"])``. Its budget lives in one queue (`queue`, or that
        of the first task using it). Returns the name."""
        bound: str | None = None if queue is None else check_options(queue=queue)["queue"]
        return self.flow.limiter(name, rate_limit, concurrency=concurrency, queue=bound).name

    def queue(self, name: str, *, rate_limit: str | None = None,
              concurrency: int | None = None, rate_key: Any = None,
              concurrency_key: Any = None) -> str:
        """Limit a whole queue: ``app.queue("emails", rate_limit="10/s", concurrency=20)``."""
        queue: str = check_options(queue=name)["queue"]
        self.flow.queue(queue, rate_limit=rate_limit, concurrency=concurrency,
                        rate_key=rate_key, concurrency_key=concurrency_key)
        return queue

    def _store_limits_on_worker_start(self) -> None:
        from .flow.api import store_declared
        from .flow.plugin import FlowPlugin

        if self.plugin(FlowPlugin.name) is None:  # the gauges of flow/metrics.py
            self.install(FlowPlugin())

        async def store_limits() -> None:
            await store_declared(self)
        self.on_worker_start(store_limits)

    @property
    def limits(self) -> Limits:
        """The limits stored in the backend: list them with their use, change them."""
        from .flow.api import Limits

        return Limits(self)

    def get_task(self, name: str) -> Task[Any, Any]:
        try:
            return self.tasks[name]
        except KeyError:
            raise UnknownTaskError(name, list(self.tasks)) from None

    @property
    def queue_names(self) -> list[str]:
        return sorted({t.defaults.queue for t in self.tasks.values()} or {self.default_queue})

    # -- seams: plugins, middleware, worker hooks (see plugins.py, middleware.py) -------
    def install(self, plugin: PluginT) -> PluginT:
        """Install a plugin: its options, leader duties, subscribers, routes and setup."""
        self.plugins.add(plugin)
        self.leader_duties.extend(plugin.leader_duties())
        plugin.setup(self)
        return plugin

    def plugin(self, name: str) -> Plugin | None:
        """The installed plugin called `name`, if any."""
        return self.plugins.get(name)

    def add_middleware(self, middleware: Any) -> None:
        """Add job middleware (``on_enqueue`` and/or ``around_job``); see middleware.py."""
        self.hooks.add_middleware(middleware)

    def on_worker_start(self, hook: H) -> H:
        """Decorator: run `hook` (sync or async, no arguments) when a worker process or a
        process-executor child starts; if it raises, the worker does not start."""
        self.hooks.add_hook("start", hook)
        return hook

    def on_worker_stop(self, hook: H) -> H:
        """Decorator: run `hook` when a worker stops, after its jobs finished or were
        handed back (and when a process-executor child exits)."""
        self.hooks.add_hook("stop", hook)
        return hook

    # -- connection ---------------------------------------------------------------------
    def use(self, url: str) -> None:
        """Point the app at another backend (tests, the CLI's --url); closes the old one."""
        new_backend = backend_for(url)
        self.close()
        self.url, self.backend = url, new_backend
        self._opened = False  # an async-only backend closes with the loop that opened it

    async def aopen(self) -> None:
        if not self._opened:
            await self.backend.open()
            self._opened = True

    def open(self) -> None:
        """Open for sync calls: the backend itself where it can run inline (SQLite, Redis), else
        the private event-loop thread with its own backend (`app.backend` stays for async
        callers and opens on their loop)."""
        with self._open_lock:
            if self.backend.capabilities.inline_sync:
                if not self._opened:
                    self.run_sync(self.backend.open)
                    self._opened = True
            elif self._portal is None:
                self._portal = _Portal(self.url)

    async def aclose(self) -> None:
        if self._opened:
            await self.backend.close()
            self._opened = False
        if self._portal is not None:
            self._portal.stop()
            self._portal = None

    def close(self) -> None:
        with self._open_lock:
            if self._opened and self.backend.capabilities.inline_sync:
                self.run_sync(self.backend.close)
                self._opened = False
            if self._portal is not None:
                self._portal.stop()
                self._portal = None

    def run_sync(self, call: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        """Run one backend coroutine from synchronous code.

        Backends that can (`capabilities.inline_sync`: SQLite, Redis) finish it on this
        thread without an event loop (`Backend.run_inline`); others run it on a private
        event loop thread with a backend instance of its own (see backends/base.py).
        """
        if self.backend.capabilities.inline_sync:
            return self.backend.run_inline(call, *args)
        if self._portal is None:
            self._portal = _Portal(self.url)
        result: T = self._portal.call(call.__name__, *args)
        return result

    async def _backend(self) -> Backend:
        if not self._opened:
            await self.aopen()
        return self.backend

    def _sync_backend(self) -> None:
        if self.backend.capabilities.inline_sync:
            if not self._opened:
                self.open()
        elif self._portal is None:
            self.open()

    # -- producers ----------------------------------------------------------------------
    def enqueue_many(self, jobs: Sequence[NewJob]) -> list[JobHandle[Any]]:
        """Store many prepared jobs (``task.prepare(...)``) in one backend call."""
        self._sync_backend()
        if self.hooks.on_enqueue:
            jobs = self.hooks.prepared(jobs)
        stored = self.run_sync(self.backend.enqueue, jobs)
        return [JobHandle(self, e.job, e.created) for e in stored]

    async def aenqueue_many(self, jobs: Sequence[NewJob], *,
                            middleware: bool = True) -> list[JobHandle[Any]]:
        """Async twin of `enqueue_many`. ``middleware=False``: the caller has shown the jobs
        to the on_enqueue middleware already (the HTTP batcher does, in each request's
        context)."""
        backend = await self._backend()
        if middleware and self.hooks.on_enqueue:
            jobs = self.hooks.prepared(jobs)
        return [JobHandle(self, e.job, e.created) for e in await backend.enqueue(jobs)]

    def enqueue(self, task_name: str, *args: Any, **kwargs: Any) -> JobHandle[Any]:
        """Enqueue a task by name (CLI and HTTP use this)."""
        return self.enqueue_many([self.get_task(task_name).prepare(*args, **kwargs)])[0]

    # -- flows (conveyor/flows) -----------------------------------------------------------
    def new_flow(self) -> Flow:
        """An empty graph of jobs: ``flow.add(job, after=[...])``, then ``flow.enqueue()``."""
        return Flow(self)

    def _flow_jobs(self, flow: Flow) -> list[NewJob]:
        jobs = flow.build(self)
        return self.hooks.prepared(jobs) if self.hooks.on_enqueue else jobs

    def enqueue_flow(self, flow: Flow) -> list[JobHandle[Any]]:
        """Store a flow (``chain``, ``group(...).then``, ``new_flow``) all at once."""
        self._sync_backend()
        stored = self.run_sync(self.backend.enqueue_flow, self._flow_jobs(flow))
        return [JobHandle(self, job) for job in stored]

    async def aenqueue_flow(self, flow: Flow) -> list[JobHandle[Any]]:
        backend = await self._backend()
        return [JobHandle(self, job) for job in
                await backend.enqueue_flow(self._flow_jobs(flow))]

    def get_flow(self, flow_id: str) -> list[Job]:
        """Every job of a flow, in the order added ([] for an unknown flow)."""
        self._sync_backend()
        return self.run_sync(self.backend.flow_jobs, flow_id)

    def cancel_flow(self, flow_id: str) -> list[str]:
        """Cancel what has not run of a flow (running jobs get a cancel request)."""
        self._sync_backend()
        return self.run_sync(self.backend.cancel_flow, flow_id)

    # -- reading ------------------------------------------------------------------------
    def _found(self, job: Job | None, job_id: str, removed_at: int | None) -> JobHandle[Any]:
        if job is not None:
            return JobHandle(self, job)
        if removed_at is not None:
            raise JobRemovedError(job_id)
        raise JobNotFoundError(job_id)

    def get_job(self, job_id: str) -> JobHandle[Any]:
        """A handle on a stored job; JobNotFoundError / JobRemovedError otherwise."""
        self._sync_backend()
        job = self.run_sync(self.backend.get, job_id)
        removed = None if job else self.run_sync(self.backend.tombstone, job_id)
        return self._found(job, job_id, removed)

    async def aget_job(self, job_id: str) -> JobHandle[Any]:
        backend = await self._backend()
        job = await backend.get(job_id)
        removed = None if job else await backend.tombstone(job_id)
        return self._found(job, job_id, removed)

    def queues(self) -> list[QueueInfo]:
        self._sync_backend()
        return self.run_sync(self.backend.queues)

    # -- operator actions (which states each applies to: operations.py) ---------------
    async def _aact_one(self, action: str, job_id: str) -> Job | None:
        backend = await self._backend()
        if not await operations.act(backend, action, JobFilter(ids=(job_id,))):
            raise operations.refused(action, (await self.aget_job(job_id)).job)  # 404/410 first
        return None if action == "remove" else (await self.aget_job(job_id)).job

    def _act_one(self, action: str, job_id: str) -> Job | None:
        self._sync_backend()
        if not self.run_sync(operations.act, self.backend, action, JobFilter(ids=(job_id,))):
            raise operations.refused(action, self.get_job(job_id).job)
        return None if action == "remove" else self.get_job(job_id).job

    def cancel_job(self, job_id: str) -> Job:
        """Cancel a waiting or delayed job now, or ask a running job's worker to stop it."""
        return _changed(self._act_one("cancel", job_id))

    async def acancel_job(self, job_id: str) -> Job:
        return _changed(await self._aact_one("cancel", job_id))

    def retry_job(self, job_id: str) -> Job:
        """Replay a failed or cancelled job with a fresh set of attempts."""
        return _changed(self._act_one("retry", job_id))

    async def aretry_job(self, job_id: str) -> Job:
        return _changed(await self._aact_one("retry", job_id))

    def promote_job(self, job_id: str) -> Job:
        """Make a delayed job due now."""
        return _changed(self._act_one("promote", job_id))

    async def apromote_job(self, job_id: str) -> Job:
        return _changed(await self._aact_one("promote", job_id))

    def remove_job(self, job_id: str) -> None:
        """Remove a job that is not running (later lookups raise JobRemovedError)."""
        self._act_one("remove", job_id)

    async def aremove_job(self, job_id: str) -> None:
        await self._aact_one("remove", job_id)

    # by filter: the ids of the jobs changed; jobs in other states are left alone
    def cancel_jobs(self, where: JobFilter) -> list[str]:
        return self._act_many("cancel", where)

    async def acancel_jobs(self, where: JobFilter) -> list[str]:
        return await operations.act(await self._backend(), "cancel", where)

    def retry_jobs(self, where: JobFilter) -> list[str]:
        return self._act_many("retry", where)

    async def aretry_jobs(self, where: JobFilter) -> list[str]:
        return await operations.act(await self._backend(), "retry", where)

    def promote_jobs(self, where: JobFilter) -> list[str]:
        return self._act_many("promote", where)

    async def apromote_jobs(self, where: JobFilter) -> list[str]:
        return await operations.act(await self._backend(), "promote", where)

    def remove_jobs(self, where: JobFilter) -> list[str]:
        return self._act_many("remove", where)

    async def aremove_jobs(self, where: JobFilter) -> list[str]:
        return await operations.act(await self._backend(), "remove", where)

    def _act_many(self, action: str, where: JobFilter) -> list[str]:
        self._sync_backend()
        return self.run_sync(operations.act, self.backend, action, where)

    def pause_queue(self, name: str, *, create: bool = False) -> None:
        """Workers claim nothing from `name` until it is resumed. A name that is no queue
        (no jobs, not paused, no task's) is refused unless `create` (see queues.py)."""
        self._sync_backend()
        self.run_sync(queues.set_paused, self, _queue(name), True, create)

    async def apause_queue(self, name: str, *, create: bool = False) -> None:
        await queues.set_paused(self, _queue(name), True, create)

    def resume_queue(self, name: str, *, create: bool = False) -> None:
        self._sync_backend()
        self.run_sync(queues.set_paused, self, _queue(name), False, create)

    async def aresume_queue(self, name: str, *, create: bool = False) -> None:
        await queues.set_paused(self, _queue(name), False, create)

    def delete_queue(self, name: str) -> None:
        """Forget an empty queue (QueueNotEmptyError while it holds jobs)."""
        self._sync_backend()
        self.run_sync(queues.delete, self, _queue(name))

    async def adelete_queue(self, name: str) -> None:
        await queues.delete(self, _queue(name))


def _queue(name: str) -> str:
    checked: str = check_options(queue=name)["queue"]
    return checked


def _changed(job: Job | None) -> Job:
    assert job is not None, "only remove answers no job"
    return job


class _TaskDecorator(Protocol):
    """What ``@app.task(...)`` returns: call it on the function."""

    @overload
    def __call__(self, fn: Callable[P, Awaitable[R]], /) -> Task[P, R]: ...

    @overload
    def __call__(self, fn: Callable[P, R], /) -> Task[P, R]: ...


class _Portal:
    """A background event loop with its own backend, for sync calls on async-only engines."""

    def __init__(self, url: str) -> None:
        self.backend = backend_for(url)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="conveyor-portal",
                                       daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.backend.open(), self.loop).result()

    def call(self, verb: str, *args: Any) -> Any:
        method = getattr(self.backend, verb)
        return asyncio.run_coroutine_threadsafe(method(*args), self.loop).result()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.backend.close(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()
