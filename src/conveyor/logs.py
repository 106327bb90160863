"""How conveyor's processes log: one shape for ``conveyor worker``, ``serve`` and ``dev``,
set up once per process (a supervised worker process sets it up again for itself)."""

from __future__ import annotations

import logging
import sys

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(level: str = "info", fmt: str = "text") -> None:
    """Log records of `level` and above to stderr, as text lines."""
    logging.basicConfig(level=level.upper(), stream=sys.stderr, force=True, format=TEXT_FORMAT)
