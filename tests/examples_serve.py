"""The HTTP API of examples/reports.py for a real uvicorn process
(``uvicorn tests.examples_serve:api``); CONVEYOR_URL and CONVEYOR_TOKENS configure it."""

from __future__ import annotations

from examples.reports import app

from conveyor.http import create_app

api = create_app(app)
