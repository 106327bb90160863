"""Flows (issue 13): jobs that wait for other jobs, stored all at once.

    from conveyor import chain, group

    chain(fetch.prepare(url), parse.prepare(), score.prepare(), pass_result=True).enqueue(app)
    group([resize.prepare(i) for i in ids]).then(notify.prepare()).enqueue(app)

    flow = app.new_flow()
    a = flow.add(fetch.prepare(url))
    b = flow.add(parse.prepare(), after=[a], pass_result="page")
    flow.add(report.prepare(), after=[a, b], on_failure="continue")
    flow.enqueue()

A job with dependencies starts in ``waiting-children`` and becomes waiting in the same
backend operation that finishes its last dependency (see backends/base.py). Each edge has
a failure policy: ``fail`` (default: the dependent ends failed, its error naming the
dependency), ``continue`` (it runs anyway) or ``skip`` (it ends cancelled). Retrying the
failed dependency resumes the flow.

Parents are added before their dependents, so a flow cannot hold a cycle; `add` refuses
a parent that is not in the flow. A parameter filled with a dependency's result
(``pass_result``) must exist in the task's signature and not be given in the prepared
call; since the call is validated when prepared, before the result exists, it needs a
default (``previous: int | None = None``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..backends.base import NewJob
from ..errors import InvalidFlowError
from ..ids import new_job_id
from ..serialization import dumps, loads

if TYPE_CHECKING:
    from ..app import Conveyor
    from ..handle import JobHandle

POLICIES = ("fail", "continue", "skip")
META = "conveyor.flow"  # job.meta entry of a job with dependencies: {"pass": param, "into": ...}


@dataclasses.dataclass(frozen=True, slots=True)
class _Edge:
    parents: tuple[str, ...]
    policy: str
    pass_result: str | bool | None
    into: str  # "one": the single parent's result; "list": every parent's, in order


class Flow:
    """A graph of prepared jobs; nothing is stored until `enqueue`."""

    def __init__(self, app: Conveyor | None = None) -> None:
        self.app = app
        self.id = new_job_id()
        self._jobs: list[NewJob] = []
        self._edges: dict[str, _Edge] = {}
        self.webhook: str | None = None

    def notify(self, url: str) -> Flow:
        """POST the flow's outcome to `url` once every job of it has finished (a signed
        ``flow.completed`` / ``flow.failed`` / ``flow.cancelled`` webhook; needs
        ``webhooks.enable(app)``)."""
        self.webhook = url
        return self

    def __len__(self) -> int:
        return len(self._jobs)

    @property
    def jobs(self) -> list[NewJob]:
        return list(self._jobs)

    def add(self, job: NewJob, after: Sequence[NewJob | str] = (), *,
            on_failure: str = "fail", pass_result: str | bool | None = None,
            into: str = "one") -> NewJob:
        """Add a prepared job that runs once every job in `after` has finished; returns
        the job to name in later `after` lists."""
        if on_failure not in POLICIES:
            raise InvalidFlowError(f"on_failure must be one of {', '.join(POLICIES)}, "
                                   f"not {on_failure!r}")
        known = {j.id for j in self._jobs}
        if job.id in known:
            raise InvalidFlowError(f"job {job.id} is in the flow already")
        parents = tuple(p if isinstance(p, str) else p.id for p in after)
        for parent in parents:
            if parent not in known:
                raise InvalidFlowError(f"{job.task}: unknown parent {parent} (add a job "
                                       "before the jobs that wait for it)")
        if len(set(parents)) != len(parents):
            raise InvalidFlowError(f"{job.task}: a parent is listed twice")
        if pass_result and not parents:
            raise InvalidFlowError(f"{job.task}: pass_result needs a dependency")
        if job.key is not None or job.special:
            raise InvalidFlowError(f"{job.task}: a flow's jobs take no dedup key, Dedup "
                                   "rule or expires= (conveyor/dedup.py)")
        self._edges[job.id] = _Edge(parents, on_failure, pass_result, into)
        if self.app is not None:
            try:
                self._check_pass(self.app, job)
            except Exception:
                del self._edges[job.id]
                raise
        self._jobs.append(job)
        return job

    def _check_pass(self, app: Conveyor, job: NewJob) -> str | None:
        """The parameter `pass_result` fills (validated against the task's signature)."""
        edge = self._edges[job.id]
        if not edge.pass_result:
            return None
        sig = app.get_task(job.task).signature.inner
        given = set(loads(job.kwargs_json))
        if isinstance(edge.pass_result, str):
            name = edge.pass_result
        else:
            free = [n for n, p in sig.parameters.items() if n not in given
                    and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
            if not free:
                raise InvalidFlowError(f"{job.task}: no parameter left to pass a result to")
            name = free[0]
        param = sig.parameters.get(name)
        if param is None or param.kind not in (param.POSITIONAL_OR_KEYWORD,
                                               param.KEYWORD_ONLY):
            raise InvalidFlowError(f"{job.task} has no parameter {name!r} to pass a result to")
        if name in given:
            raise InvalidFlowError(f"{job.task}: {name!r} is given in the call and "
                                   "would also receive a result")
        return name

    def build(self, app: Conveyor) -> list[NewJob]:
        """The jobs as the backend stores them (flow id, parents, meta)."""
        if not self._jobs:
            raise InvalidFlowError("a flow needs at least one job")
        out = []
        hook = self._webhook(app)
        for job in self._jobs:
            edge = self._edges[job.id]
            meta = job.meta_json
            if edge.parents or hook:
                entry: dict[str, Any] = {"pass": self._check_pass(app, job),
                                         "into": edge.into, "parents": list(edge.parents)}
                if hook:
                    entry["webhook"] = hook
                meta = dumps({**loads(meta), META: entry})
            out.append(dataclasses.replace(
                job, flow_id=self.id, meta_json=meta,
                parents=tuple((p, edge.policy) for p in edge.parents)))
        return out

    def _webhook(self, app: Conveyor) -> str | None:
        if self.webhook is None:
            return None
        hooks = app.plugin("conveyor.webhooks")
        if hooks is None:
            raise InvalidFlowError("flow.notify(url) needs webhooks: webhooks.enable(app)")
        checked: str = hooks.check_option("webhook", self.webhook)
        return checked

    def enqueue(self, app: Conveyor | None = None) -> list[JobHandle[Any]]:
        """Store the whole flow (or nothing); handles of its jobs, in the order added."""
        app = self._app(app)
        return app.enqueue_flow(self)

    async def aenqueue(self, app: Conveyor | None = None) -> list[JobHandle[Any]]:
        app = self._app(app)
        return await app.aenqueue_flow(self)

    def _app(self, app: Conveyor | None) -> Conveyor:
        app = app or self.app
        if app is None:
            raise InvalidFlowError("enqueue(app): this flow was built without an app")
        return app


def chain(*jobs: NewJob, pass_result: str | bool | None = None,
          on_failure: str = "fail") -> Flow:
    """Each job runs after the previous one completed; `pass_result` hands it the
    previous one's result (True: to its first parameter the call left unset)."""
    flow = Flow()
    previous: NewJob | None = None
    for job in jobs:
        after = [previous] if previous is not None else []
        flow.add(job, after, on_failure=on_failure,
                 pass_result=pass_result if previous is not None else None)
        previous = job
    return flow


class Group:
    """Jobs that run independently; `then` adds a callback that waits for all of them."""

    def __init__(self, jobs: Sequence[NewJob]) -> None:
        if not jobs:
            raise InvalidFlowError("a group needs at least one job")
        self.flow = Flow()
        self.members = [self.flow.add(job) for job in jobs]

    def then(self, callback: NewJob, *, on: str = "completion",
             pass_result: str | bool | None = None) -> Flow:
        """The callback runs once every member finished (on="success": only if every
        member completed, else it ends cancelled); `pass_result` hands it the members'
        results in order (None for a failed one)."""
        if on not in ("completion", "success"):
            raise InvalidFlowError(f"on must be 'completion' or 'success', not {on!r}")
        self.flow.add(callback, self.members, pass_result=pass_result, into="list",
                      on_failure="continue" if on == "completion" else "skip")
        return self.flow


def group(jobs: Sequence[NewJob]) -> Group:
    return Group(jobs)
