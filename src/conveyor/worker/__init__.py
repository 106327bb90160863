"""Running jobs: the worker loop, its keeper thread and the process executor."""

from .worker import Worker

__all__ = ["Worker"]
