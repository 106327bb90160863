"""A `conveyor serve` equivalent for the dashboard tests: uvicorn on a given port serving
`create_app` for the test tasks (CONVEYOR_URL, CONVEYOR_USERS, ... from the environment).

    python -m tests.dashboard.serve PORT [PREFIX]

With PREFIX, the dashboard is also mounted at PREFIX inside a user's own FastAPI app, as
a user would mount it (the API stays at the root).
"""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI

from conveyor.dashboard import create_dashboard
from conveyor.http import HttpSettings, create_app
from tests.dashboard.tasks import app as conveyor


def build(prefix: str | None = None) -> FastAPI:
    settings = HttpSettings.from_env()
    api = create_app(conveyor, settings)
    if not prefix:
        return api
    outer = FastAPI()
    outer.mount(prefix, create_dashboard(conveyor, settings, hub=api.state.hub))
    outer.mount("/", api)
    return outer


def main() -> None:
    port = int(sys.argv[1])
    prefix = sys.argv[2] if len(sys.argv) > 2 else None
    uvicorn.run(build(prefix), host="127.0.0.1", port=port, log_level="warning",
                timeout_graceful_shutdown=2)


if __name__ == "__main__":
    main()
