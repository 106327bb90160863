"""A script whose executor="process" tasks and worker run without an
``if __name__ == "__main__":`` guard is refused with a clear error instead of re-running
in every child (where each re-run enqueued again and started another worker)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT

SCRIPT = '''
import sys
from conveyor import Conveyor
from conveyor.testing import drain

app = Conveyor(sys.argv[1] if len(sys.argv) > 1 else {url!r})

@app.task(executor="process", attempts=3)
def square(n: int) -> int:
    return n * n

{body}
'''
BODY = '''
job = square.enqueue(3)
drain(app, timeout=60)
final = job.refresh()
print("STATE", final.state.value, final.attempt)
print("ERROR", final.errors[-1]["message"] if final.errors else "")
'''


def run_script(tmp_path: Path, guarded: bool) -> tuple[str, int]:
    """(the script's output, jobs stored)"""
    url = f"sqlite:///{tmp_path}/jobs.db"
    body = BODY if not guarded else "if __name__ == '__main__':\n" + "".join(
        f"    {line}\n" for line in BODY.strip().splitlines())
    script = tmp_path / "script.py"
    script.write_text(SCRIPT.format(url=url, body=body))
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, env=env, cwd=tmp_path)
    with sqlite3.connect(tmp_path / "jobs.db") as db:
        jobs = db.execute("SELECT count(*) FROM jobs").fetchone()[0]
    return done.stdout + done.stderr, jobs


def test_an_unguarded_script_fails_its_job_clearly_and_stores_nothing_more(
        tmp_path: Path) -> None:
    output, jobs = run_script(tmp_path, guarded=False)
    assert jobs == 1, output  # the children did not enqueue again
    assert "STATE failed 1" in output, output  # not retried: a new child would do the same
    assert 'if __name__ == "__main__":' in output.split("ERROR", 1)[1], output


def test_a_guarded_script_runs_its_process_tasks(tmp_path: Path) -> None:
    output, jobs = run_script(tmp_path, guarded=True)
    assert jobs == 1 and "STATE completed 1" in output, output
