"""What the deploy/ files are checked against: the `conveyor` command line as the code
defines it, and the metric names a real /metrics serves."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer.main
import yaml
from prometheus_client.parser import text_string_to_metric_families

from conveyor import Conveyor
from conveyor.cli import cli
from conveyor.http import HttpSettings, create_app
from conveyor.testing import adrain
from tests.helpers import ROOT

DEPLOY = ROOT / "deploy"
READ_TOKEN = "deploy-tests-read"
# a PromQL identifier that names one of ours (the rest are functions, labels, keywords)
METRIC = re.compile(r"\b((?:conveyor|process|python)_[a-zA-Z0-9_]*)\b")


def load_yaml(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def parse_command(args: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """Parse `conveyor ARGS` with the real command line, without running it: an unknown
    command or option, or a bad value, raises click's usage error. Returns the command's
    name and its parameters."""
    group: Any = typer.main.get_command(cli)  # a click group (typer may vendor its click)
    with group.make_context("conveyor", list(args), resilient_parsing=False) as ctx:
        # the command's name: click 8.2+ keeps it in _protected_args, older in protected_args
        first = getattr(ctx, "_protected_args", None) or getattr(ctx, "protected_args", [])
        name, command, rest = group.resolve_command(ctx, [*first, *ctx.args])
        assert command is not None and name is not None, f"no command in {args}"
        with command.make_context(name, rest, parent=ctx) as sub:
            return name, dict(sub.params)


def metric_names(text: str) -> set[str]:
    """The metric (not function) names a PromQL expression or rule file mentions."""
    return set(METRIC.findall(text))


@pytest.fixture(scope="session")
def served_metrics(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every sample name of a real GET /metrics, after jobs were enqueued, retried and
    finished by a real worker and a schedule was declared, so every family has samples."""
    return asyncio.run(_scrape(tmp_path_factory.mktemp("metrics")))


async def _scrape(folder: Path) -> set[str]:
    app = Conveyor(f"sqlite:///{folder}/jobs.db")
    failures = itertools.count()

    @app.task(queue="work", attempts=2, backoff="fixed:0.01s")
    def flaky() -> str:
        if next(failures) == 0:
            raise ConnectionError("first attempt fails")
        return "ok"

    @app.task(queue="work")
    def tidy() -> None:
        """Scheduled, so the schedule families are served too (declared at worker start)."""

    app.schedule("tidy-hourly", tidy, every="1h")

    api = create_app(app, HttpSettings.from_env({"CONVEYOR_TOKENS": f"read:{READ_TOKEN}"}))
    headers = {"Authorization": f"Bearer {READ_TOKEN}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api),
                                 base_url="http://conveyor") as client:
        assert (await client.get("/metrics", headers=headers)).status_code == 200
        await flaky.aenqueue()
        await adrain(app, ["work"])
        response = await client.get("/metrics", headers=headers)
    await app.aclose()
    assert response.status_code == 200, response.text
    return {sample.name for family in text_string_to_metric_families(response.text)
            for sample in family.samples}
