"""The sdist and wheel of HEAD, built once per run the way a release is: `python -m build`
in a clean export of the repository (no node_modules, no built vendor files), and a fresh
virtual environment to install them into."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import ROOT


@dataclass(frozen=True)
class Dists:
    source: Path  # the clean export they were built from
    wheel: Path
    sdist: Path

    def wheel_names(self) -> set[str]:
        with zipfile.ZipFile(self.wheel) as wheel:
            return set(wheel.namelist())

    def sdist_names(self) -> set[str]:
        with tarfile.open(self.sdist) as sdist:
            return {name.partition("/")[2] for name in sdist.getnames()}


def export_head(target: Path) -> Path:
    """The committed tree of HEAD, as `git archive` gives it to a packager."""
    target.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", "HEAD"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def run_build(source: Path, *args: str, env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "build", "--outdir", str(source / "dist"),
                           *args, str(source)], capture_output=True, text=True, env=env,
                          timeout=600, check=False)


@pytest.fixture(scope="session")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    source = export_head(tmp_path_factory.mktemp("build") / "conveyor")
    built = run_build(source)
    assert built.returncode == 0, f"python -m build failed:\n{built.stdout}\n{built.stderr}"
    (wheel,) = (source / "dist").glob("*.whl")
    (sdist,) = (source / "dist").glob("*.tar.gz")
    return Dists(source, wheel, sdist)


@dataclass(frozen=True)
class Venv:
    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    def pip_install(self, *requirements: str) -> None:
        """pip of the running interpreter installs into this venv (pip --python), from the
        package index through pip's cache: a fresh venv needs no pip of its own. Without
        PYTHONPATH, or pip would take a source tree on it for an installed conveyor."""
        done = subprocess.run(
            [sys.executable, "-m", "pip", "--python", str(self.python), "install", "--quiet",
             "--disable-pip-version-check", *requirements],
            env=self.env(), capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, f"pip install {requirements} failed:\n{done.stderr}"

    def env(self, **extra: str) -> dict[str, str]:
        """This process's environment less what points at the source tree, this venv first
        on PATH."""
        base = {k: v for k, v in os.environ.items()
                if k not in ("PYTHONPATH", "CONVEYOR_URL", "CONVEYOR_APP", "VIRTUAL_ENV")}
        return {**base, "PATH": f"{self.root / 'bin'}:{base['PATH']}", **extra}

    def run(self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(args), cwd=cwd, env=self.env(**(env or {})),
                              capture_output=True, text=True, timeout=timeout, check=False)

    def python_code(self, code: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return self.run(str(self.python), "-c", code, cwd=cwd)


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venv]:
    root = tmp_path_factory.mktemp("venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    yield Venv(root)
