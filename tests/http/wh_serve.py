"""The ASGI app the webhook, metrics and client tests serve with a real uvicorn process:
``uvicorn tests.http.wh_serve:api``. CONVEYOR_URL and CONVEYOR_TOKENS configure it."""

from __future__ import annotations

from conveyor.http import create_app
from tests.http.wh_app import app

api = create_app(app)

