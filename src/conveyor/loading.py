"""Finding your code by name: an app from ``MODULE:ATTR``, a task from its module and
qualified name.

One loader for every process that has to find your code again: the CLI, the uvicorn
factory of ``conveyor serve`` (each server process builds the app from ``CONVEYOR_APP``),
the supervised worker processes and the children of the process executor. The same
``sys.path`` rule and the same one-line errors apply everywhere.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError

if TYPE_CHECKING:
    from .app import Conveyor


def import_object(module_name: str, qualname: str) -> Any:
    """``module_name``'s attribute at the dotted path `qualname` (ImportError and
    AttributeError propagate: the callers word them for their own context)."""
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


def split_path(path: str) -> tuple[str, str]:
    """``MODULE:ATTR`` as its two parts."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ConfigurationError(f"bad app {path!r}: use MODULE:ATTRIBUTE, e.g. myproject.jobs:app")
    return module_name, attr


def import_path(path: str, what: str = "app") -> Any:
    """Import ``MODULE:ATTR`` from the current directory too (like uvicorn)."""
    module_name, attr = split_path(path)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import {what} module {module_name!r}: {exc}") from None
    try:
        return import_object(module.__name__, attr)
    except AttributeError:
        raise ConfigurationError(f"module {module_name!r} has no attribute {attr!r}") from None


def load_app(path: str) -> Conveyor:
    """The `Conveyor` app at ``MODULE:ATTR``."""
    from .app import Conveyor

    target = import_path(path)
    if not isinstance(target, Conveyor):
        raise ConfigurationError(f"{path} is a {type(target).__name__}, not a Conveyor app")
    return target


def app_from_env() -> Conveyor:
    """``CONVEYOR_APP``'s app on ``CONVEYOR_URL``'s backend (when set and different): how
    a process started by another (server processes, supervised workers) finds the app."""
    path = os.environ.get("CONVEYOR_APP")
    if not path:
        raise ConfigurationError("CONVEYOR_APP is not set")
    app = load_app(path)
    url = os.environ.get("CONVEYOR_URL")
    if url and app.url != url:
        app.use(url)
    return app
