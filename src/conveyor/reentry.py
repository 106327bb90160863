"""Refusing a script that re-runs itself in every process-executor child.

Children of the process executor are started with "spawn": each one imports the parent's
``__main__`` module again (as ``__mp_main__``) to find tasks defined there. A script
without an ``if __name__ == "__main__":`` guard around its enqueues and its worker then
runs them again in every child: more jobs, more workers, more children.

conveyor notices when a backend is opened while a spawned child is still importing its
parent's ``__main__`` (the moment multiprocessing calls "bootstrapping"): the child says
why on stderr and exits with `REENTERED`, before anything is stored. The process executor
turns that exit into a job error that says the same (see worker/processes.py).
"""

from __future__ import annotations

import multiprocessing
import sys

REENTERED = 75  # the exit code of such a child
MESSAGE = (
    "this script runs again in every executor='process' child (children import the "
    "script that started the worker to find its tasks), and it enqueues jobs or starts a "
    "worker as it is imported: put that code under `if __name__ == \"__main__\":`, or "
    "define the tasks in a module of their own"
)


def refuse_reentry() -> None:
    """Exit if this is a spawned child still importing its parent's main script."""
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        print(f"conveyor: {MESSAGE}", file=sys.stderr, flush=True)
        raise SystemExit(REENTERED)
