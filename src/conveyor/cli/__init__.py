"""The ``conveyor`` command line: run workers, enqueue jobs, look at them and act on them.

    conveyor dev                                       # the first five minutes
    conveyor worker myproject.jobs:app -q reports,emails -c 20
    conveyor --app myproject.jobs:app enqueue generate_report --arg user_id=1 --wait
    conveyor jobs --state failed
    conveyor retry --all-failed --queue reports

Configuration options also read ``CONVEYOR_*`` environment variables (``CONVEYOR_APP``,
``CONVEYOR_URL``, ``CONVEYOR_QUEUES``, ``CONVEYOR_CONCURRENCY``, ...). Options that carry
the data of one call (``--arg``, ``--key``, a job selection, ``--yes``) do not: a stray
``CONVEYOR_KEY`` in a shell must not silently deduplicate every enqueue.

Errors are one line on stderr: exit 1 for a refused action (any `ConveyorError`), 2 for
a bad command line.

One module per command group, each registering its commands on `cli` (from `_root`);
a new command is a new module imported below. Shared pieces live in `common`, rendering
in `render`.
"""
# ruff: noqa: I001 (the import order below is the order of --help)

from __future__ import annotations

# Imported for their commands, in --help order: first the commands that run your code.
from . import dev, worker, enqueue, serve  # noqa: F401
from . import jobs, queues, info, check  # noqa: F401
from . import passwords  # noqa: F401
from . import schedules  # noqa: F401
from . import limits  # noqa: F401
from . import flows  # noqa: F401
from ._root import cli, main

__all__ = ["cli", "main"]
