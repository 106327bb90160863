"""Which event loop a worker runs on: uvloop when it is installed (it comes with the
``server`` extra), else asyncio's own; ``--loop asyncio|uvloop`` chooses.

On a job whose body makes one asyncio Redis call, uvloop takes a sizeable share of the
worker's CPU per job off (figures in bench/README.md, ``bench/processes.py --loop``).
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from .errors import ConfigurationError

T = TypeVar("T")
CHOICES = ("auto", "asyncio", "uvloop")


def resolve(choice: str) -> str:
    """"asyncio" or "uvloop" for a --loop value ("auto": uvloop if installed)."""
    if choice not in CHOICES:
        raise ConfigurationError(f"bad --loop {choice!r}: one of {', '.join(CHOICES)}")
    installed = importlib.util.find_spec("uvloop") is not None
    if choice == "uvloop" and not installed:
        raise ConfigurationError("--loop uvloop: uvloop is not installed "
                                 "(pip install 'conveyor[server]' or uvloop)")
    if choice == "auto":
        return "uvloop" if installed else "asyncio"
    return choice


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if resolve(choice) == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return None


def run(main: Coroutine[Any, Any, T], choice: str = "auto") -> T:
    """`asyncio.run` on the chosen loop."""
    with asyncio.Runner(loop_factory=loop_factory(choice)) as runner:
        return runner.run(main)


def running_name() -> str:
    """"uvloop" or "asyncio": the running loop, for a worker's first lines."""
    module = type(asyncio.get_running_loop()).__module__
    return "uvloop" if module.startswith("uvloop") else "asyncio"
