"""Type checkers see a task's parameters through enqueue (ParamSpec), so wrong calls are
caught before they run."""

from __future__ import annotations

from pathlib import Path

from mypy import api

SAMPLE = Path(__file__).parent / "typecheck" / "enqueue_types.py"


def test_mypy_flags_exactly_the_wrong_enqueue_calls() -> None:
    out, _, status = api.run(["--strict", "--no-incremental", "--cache-dir=/dev/null",
                              str(SAMPLE)])
    flagged = sorted({int(line.split(":")[1]) for line in out.splitlines()
                      if ": error:" in line})
    expected = [n for n, line in enumerate(SAMPLE.read_text().splitlines(), 1)
                if line.endswith("# E: wrong type") or "# E:" in line]
    assert status == 1
    assert flagged == expected, out
