"""schemathesis against the app's own OpenAPI: generated requests (valid and invalid) never
get a 5xx, and every answer matches the documented status codes, headers and schemas.

The examples per operation are few (CONVEYOR_SCHEMA_EXAMPLES, default 15) so the run
stays short; raise it to search harder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from conveyor.http import create_app
from tests.http import http_app
from tests.http.conftest import ADMIN
from tests.http.conftest import settings as http_settings

EXAMPLES = int(os.environ.get("CONVEYOR_SCHEMA_EXAMPLES", "15"))
# this part's routes; the global event stream never ends, so it is left out
MINE = r"^/(healthz|readyz|v1/(tasks|jobs|queues|workers|limits)(/.*)?)$"


API = create_app(http_app.app, http_settings())
schema = schemathesis.openapi.from_asgi("/openapi.json", API).include(path_regex=MINE)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    url = f"sqlite:///{tmp_path}/schema.db"
    monkeypatch.setenv("CONVEYOR_URL", url)
    http_app.app.use(url)
    http_app.app.open()  # one stored limiter, so /v1/limits has something to show
    http_app.app.run_sync(http_app.app.backend.declare_limits,
                          [("default", "queue", {"rate": [10, 1000], "concurrency": None})])
    yield
    http_app.app.close()


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_every_answer_matches_the_openapi_and_none_is_a_5xx(case: Any, store: None) -> None:
    excluded = []
    if case.operation.path == "/v1/jobs":
        # a cursor is opaque: any string fits the schema, only the server's own are valid
        # (a documented 400 otherwise), so "schema-valid data is accepted" cannot hold here
        excluded.append(positive_data_acceptance)
    if case.operation.path.startswith("/v1/limits/"):
        # a rate's count and window have bounds the pattern does not spell out ("0/s" fits
        # it, and is a documented 422), and a generated name is rarely a stored limiter
        excluded.append(positive_data_acceptance)
    case.call_and_validate(headers={"Authorization": f"Bearer {ADMIN}"},
                           excluded_checks=excluded)


enqueue_schema = schemathesis.openapi.from_asgi("/openapi.json", API).include(
    path="/v1/tasks/{task}/jobs", method="POST")


@enqueue_schema.parametrize()
@settings(max_examples=EXAMPLES * 4, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_enqueue_of_a_real_task_with_generated_options_is_never_a_5xx(
        case: Any, store: None) -> None:
    case.path_parameters = {"task": "nothing"}  # exposed, no parameters
    # the task's own signature is not in the schema: generated arguments get 422
    case.call_and_validate(headers={"Authorization": f"Bearer {ADMIN}"},
                           excluded_checks=[positive_data_acceptance])
