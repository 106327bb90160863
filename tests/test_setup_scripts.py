"""The README's test command on a machine that lacks the programs the suite needs: as root
it installs them; otherwise it stops at once, one line per missing program and the command
that installs them (never a browser test that errors for want of chromium)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NEEDED = {"redis-server": "redis-server", "chromium": "chromium", "npm": "nodejs npm",
          "promtool": "prometheus", "openssl": "openssl"}


def _source_system(path: str, **env: str) -> subprocess.CompletedProcess[str]:
    bash = shutil.which("bash")
    assert bash is not None
    return subprocess.run([bash, "-c", f"source {ROOT}/scripts/_system.sh && echo ready"],
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": path, "HOME": os.environ.get("HOME", "/"), **env})


def test_a_machine_without_the_programs_gets_one_line_each_and_the_install_command(
        tmp_path: Path) -> None:
    bare = tmp_path / "bin"
    bare.mkdir()
    found = shutil.which("id")
    assert found is not None
    (bare / "id").symlink_to(found)  # what the check itself uses; nothing the suite needs
    (bare / "python3").symlink_to(sys.executable)
    done = _source_system(str(bare), CONVEYOR_NO_INSTALL="1")
    assert done.returncode == 1 and "ready" not in done.stdout
    lines = done.stderr.strip().splitlines()
    for program, package in NEEDED.items():
        assert sum(line.startswith(f"missing: {program} (package {package})")
                   for line in lines) == 1, lines
    assert lines[-1] == ("install them with: sudo apt-get install "
                         + " ".join(NEEDED.values()))


def test_a_machine_with_everything_goes_on_silently() -> None:
    done = _source_system(os.environ["PATH"], CONVEYOR_NO_INSTALL="1")
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "ready", "")
