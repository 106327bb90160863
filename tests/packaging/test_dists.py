"""`python -m build` in a clean export of HEAD gives a wheel that ships everything the code
loads at run time (the dashboard's npm-built JavaScript included) and nothing else, and an
sdist that carries the front-end sources to rebuild them; without npm the build fails."""

from __future__ import annotations

import email
import hashlib
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.helpers import ROOT

from .conftest import Dists, export_head, run_build

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

VENDOR = "conveyor/dashboard/static/vendor/"
WEB_AND_REDIS = {"fastapi", "starlette", "uvicorn", "jinja2", "httpx", "python-multipart",
                 "prometheus-client", "itsdangerous", "argon2-cffi", "uvloop", "redis",
                 "hiredis", "opentelemetry-api"}
FRONT_END = {"htmx.min.js", "htmx-sse.min.js", "uPlot.iife.min.js", "uPlot.min.css",
             "htmx.LICENSE", "uPlot.LICENSE"}


def tracked_data_files() -> set[str]:
    """Every non-Python file committed under src/conveyor that the code reads at run time
    (the npm sources under dashboard/frontend/ only build them)."""
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "src/conveyor"],
                            check=True, capture_output=True, text=True).stdout.split()
    return {path.removeprefix("src/") for path in listed
            if not path.endswith(".py") and "/dashboard/frontend/" not in path}


def test_wheel_ships_the_dashboards_front_end_files(dists: Dists) -> None:
    names = dists.wheel_names()
    assert {VENDOR + name for name in FRONT_END} <= names
    with zipfile.ZipFile(dists.wheel) as wheel:
        htmx = wheel.read(VENDOR + "htmx.min.js")
        lock = (dists.source / "src/conveyor/dashboard/frontend/package-lock.json").read_bytes()
        stamp = wheel.read(VENDOR + "built-from-lock.txt").decode().strip()
    assert len(htmx) > 10_000 and b"htmx" in htmx
    assert stamp == hashlib.sha1(lock).hexdigest()  # built from the committed lock


def test_wheel_ships_every_data_file_the_code_reads(dists: Dists) -> None:
    missing = tracked_data_files() - dists.wheel_names()
    assert not missing, f"committed data files left out of the wheel: {sorted(missing)}"


def test_wheel_is_lean(dists: Dists) -> None:
    names = dists.wheel_names()
    assert not [n for n in names if "/frontend/" in n or "node_modules" in n]
    assert not [n for n in names if n.startswith(("tests/", "examples/", "bench/"))]
    assert "conveyor-0.1.0.dist-info/licenses/LICENSE" in names
    assert "conveyor/py.typed" in names


def test_sdist_carries_the_front_end_sources_license_and_changelog(dists: Dists) -> None:
    names = dists.sdist_names()
    frontend = "src/conveyor/dashboard/frontend/"
    assert {frontend + "package.json", frontend + "package-lock.json",
            frontend + "build.sh", "LICENSE", "CHANGELOG.md", "setup.py"} <= names
    assert not [n for n in names if "node_modules" in n]


def test_core_requirements_leave_web_and_redis_to_extras(dists: Dists) -> None:
    with zipfile.ZipFile(dists.wheel) as wheel:
        meta = email.message_from_bytes(wheel.read("conveyor-0.1.0.dist-info/METADATA"))
    requires = meta.get_all("Requires-Dist") or []
    core = {re.split(r"[\[<>=;! ]", r, maxsplit=1)[0].lower() for r in requires
            if "extra ==" not in r}
    assert {"pydantic", "orjson", "typer", "rich"} <= core
    assert not core & WEB_AND_REDIS, f"in the core: {sorted(core & WEB_AND_REDIS)}"
    assert set(meta.get_all("Provides-Extra") or []) == {"redis", "server", "client", "otel",
                                                         "all"}
    assert meta["License-Expression"] == "MIT"
    assert any(u.startswith("Changelog, ") for u in meta.get_all("Project-URL") or [])
    assert not [r for r in requires if r.startswith(("pytest", "mypy", "ruff"))]


def test_a_build_without_npm_fails_loudly(tmp_path: Path) -> None:
    source = export_head(tmp_path / "conveyor")
    tools = tmp_path / "bin"  # what the build needs on PATH, npm left out
    tools.mkdir()
    for tool in ("bash", "sha1sum", "cut", "cat", "dirname", "git", "tar", "gzip"):
        found = shutil.which(tool)
        assert found, tool
        (tools / tool).symlink_to(found)
    built = run_build(source, "--wheel", env={**os.environ, "PATH": str(tools)})
    assert built.returncode != 0
    assert "npm is needed to build the dashboard's front-end files" in built.stderr + built.stdout
    assert not list((source / "dist").glob("*.whl"))
