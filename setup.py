"""The one build step pyproject.toml cannot say: the dashboard's front-end files.

htmx and uPlot come from npm (src/conveyor/dashboard/frontend/, lock file committed) and are
never committed. Building an sdist or a wheel runs frontend/build.sh --require first, which
builds them (or finds them built from the same lock) and fails the build when npm is
missing: a package never ships a dashboard without its JavaScript. An editable install only
warns, like scripts/_env.sh, so a machine without npm can still develop the Python side.
"""

import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

BUILD = Path(__file__).parent / "src" / "conveyor" / "dashboard" / "frontend" / "build.sh"


def build_frontend(require: bool) -> None:
    args = ["bash", str(BUILD)] + (["--require"] if require else [])
    if subprocess.run(args, check=False).returncode != 0:
        raise SystemExit("the dashboard's front-end build failed (see above)")


class BuildPyWithFrontend(build_py):
    def run(self) -> None:
        build_frontend(require=not self.editable_mode)
        super().run()


class SdistWithFrontend(sdist):
    def run(self) -> None:
        build_frontend(require=True)
        super().run()


setup(cmdclass={"build_py": BuildPyWithFrontend, "sdist": SdistWithFrontend})
