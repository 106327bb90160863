"""examples/pipelines.py (the README's "Flows") runs as shown: the chain passes its
result on, the group's callback gets the members' results and failures, and the graph's
job whose dependency failed under on_failure="skip" ends cancelled."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT


def test_the_readme_flows_run_as_shown(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}"}
    env.pop("CONVEYOR_URL", None)
    done = subprocess.run([sys.executable, "-m", "examples.pipelines"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["32 {'total': 12, 'failed': 1} cancelled"]
