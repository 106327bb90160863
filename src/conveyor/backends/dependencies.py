"""What every backend checks before storing a flow (conveyor/flows): the builder in
conveyor/flows refuses the same mistakes earlier, this keeps a direct caller of
`Backend.enqueue_flow` from storing a flow no backend could run."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import InvalidFlowError
from .base import NewJob

POLICIES = ("fail", "continue", "skip")


def check_flow(jobs: Sequence[NewJob]) -> set[str]:
    """Refuse what cannot be stored (InvalidFlowError); the ids of jobs others wait for."""
    if not jobs:
        raise InvalidFlowError("a flow needs at least one job")
    flow_id = jobs[0].flow_id
    if not flow_id:
        raise InvalidFlowError("every job of a flow carries its flow_id")
    seen: set[str] = set()
    parents: set[str] = set()
    for new in jobs:
        if new.flow_id != flow_id:
            raise InvalidFlowError(f"job {new.id} belongs to flow {new.flow_id}, not {flow_id}")
        if new.key is not None or new.special:
            raise InvalidFlowError(f"job {new.id}: a flow's jobs take no dedup key, dedup "
                                   "mode or expiry")
        if new.id in seen:
            raise InvalidFlowError(f"job id {new.id} appears twice in the flow")
        for parent, policy in new.parents:
            if parent not in seen:
                raise InvalidFlowError(f"job {new.id} waits for {parent}, which is not an "
                                       "earlier job of the flow")
            if policy not in POLICIES:
                raise InvalidFlowError(f"unknown failure policy {policy!r}")
            parents.add(parent)
        seen.add(new.id)
    return parents


def children(jobs: Sequence[NewJob]) -> dict[str, list[list[str]]]:
    """Each job others wait for -> [[dependent id, policy], ...], in the flow's order."""
    out: dict[str, list[list[str]]] = {}
    for new in jobs:
        for parent, policy in new.parents:
            out.setdefault(parent, []).append([new.id, policy])
    return out


def check_children(jobs: Sequence[NewJob]) -> None:
    """Jobs a running job spawns: no dedup key, no parents of their own, ids unique."""
    if not jobs:
        raise InvalidFlowError("spawn needs at least one job")
    if len({new.id for new in jobs}) != len(jobs):
        raise InvalidFlowError("a spawned job id appears twice")
    for new in jobs:
        if new.key is not None or new.parents or new.special:
            raise InvalidFlowError(f"spawned job {new.id} takes no dedup key, dedup mode, "
                                   "expiry or parents (build a flow for that)")
