"""The built wheel installs into a fresh virtual environment: the core alone (no web, Redis
or HTTP-client package) imports, runs the README's quickstart with a real worker process,
and names the extra to install for a part that needs one; then each extra installs and its
part imports."""

from __future__ import annotations

import signal
import subprocess
import textwrap
from pathlib import Path

import pytest

from .conftest import Dists, Venv

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

OPTIONAL = ("fastapi", "starlette", "uvicorn", "jinja2", "prometheus_client", "httpx",
            "redis", "hiredis", "opentelemetry")

QUICKSTART = '''
from conveyor import Conveyor, log, progress

app = Conveyor("sqlite:///conveyor.db")

@app.task(queue="reports", attempts=5, backoff="30s,2m,10m,1h", timeout=120)
async def generate_report(user_id: int, days: int = 30) -> dict:
    progress(10)
    log("fetching usage")
    return {"user": user_id, "days": days, "score": 97}
'''


def test_core_installs_without_web_or_redis_and_imports(dists: Dists, venv: Venv) -> None:
    venv.pip_install(str(dists.wheel))
    loaded = venv.python_code(textwrap.dedent(f"""
        import sys
        import conveyor, conveyor.cli, conveyor.worker, conveyor.testing
        from conveyor.backends.sqlite import SqliteBackend
        print(sorted({{m.split(".")[0] for m in sys.modules}} & set({OPTIONAL!r})))
        """))
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "[]"
    for package in OPTIONAL:  # not merely unimported: not installed at all
        found = venv.python_code(f"import importlib.util as u; print(u.find_spec({package!r}))")
        assert found.stdout.strip() == "None", f"{package} came with the core"


@pytest.mark.parametrize(("code", "extra"), [
    ("import conveyor.http", "server"),
    ("import conveyor.dashboard", "server"),
    ("import conveyor.client", "client"),
    ("import conveyor.webhooks", "server"),
    ("import conveyor.otel", "otel"),
    ("from conveyor import Conveyor; Conveyor('redis://localhost:1/0').backend", "redis"),
])
def test_a_part_without_its_extra_names_the_extra(dists: Dists, venv: Venv, code: str,
                                                  extra: str) -> None:
    venv.pip_install(str(dists.wheel))
    failed = venv.python_code(f"""
from conveyor.errors import MissingExtraError
try:
    {code}
except MissingExtraError as exc:
    print(exc)
""")
    assert failed.returncode == 0, failed.stderr
    assert f"pip install 'conveyor[{extra}]'" in failed.stdout


def test_serve_without_the_server_extra_is_a_one_line_error(dists: Dists, venv: Venv,
                                                             tmp_path: Path) -> None:
    venv.pip_install(str(dists.wheel))
    (tmp_path / "quick.py").write_text(QUICKSTART)
    served = venv.run(str(venv.root / "bin" / "conveyor"), "serve", "quick:app", cwd=tmp_path,
                      env={"PYTHONPATH": str(tmp_path)})
    assert served.returncode == 1
    assert served.stderr.strip().count("\n") == 0, served.stderr
    assert "pip install 'conveyor[server]'" in served.stderr


def test_readme_quickstart_runs_from_the_installed_wheel(dists: Dists, venv: Venv,
                                                         tmp_path: Path) -> None:
    venv.pip_install(str(dists.wheel))
    (tmp_path / "quick.py").write_text(QUICKSTART)
    env = {"PYTHONPATH": str(tmp_path), "CONVEYOR_APP": "quick:app"}
    conveyor = str(venv.root / "bin" / "conveyor")
    worker = subprocess.Popen([conveyor, "worker", "-q", "reports", "-c", "4"], cwd=tmp_path,
                              env=venv.env(**env), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        done = venv.run(conveyor, "enqueue", "generate_report", "--arg", "user_id=1",
                        "--arg", "days=90", "--wait", "--timeout-wait", "45", cwd=tmp_path,
                        env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert '"score": 97' in done.stdout and '"days": 90' in done.stdout
        queues = venv.run(conveyor, "queues", cwd=tmp_path, env=env)
        assert queues.returncode == 0 and "reports" in queues.stdout
    finally:
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=60)
    assert worker.returncode == 0, output


@pytest.mark.parametrize(("extra", "code"), [
    ("redis", "from conveyor.backends.redis import RedisBackend"),
    ("client", "from conveyor.client import Client"),
    ("server", "from conveyor.http import create_app; from conveyor.dashboard import "
               "create_dashboard; import conveyor.metrics, conveyor.webhooks"),
    ("otel", "from conveyor.otel import Tracing; Tracing()"),
    ("all", "import conveyor.http, conveyor.client, conveyor.backends.redis, opentelemetry"),
])
def test_each_extra_installs_and_its_part_imports(dists: Dists, venv: Venv, extra: str,
                                                  code: str) -> None:
    venv.pip_install(f"conveyor[{extra}] @ {dists.wheel.as_uri()}")
    imported = venv.python_code(code)
    assert imported.returncode == 0, imported.stderr
