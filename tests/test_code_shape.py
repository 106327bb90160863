"""Functions fit on a screen: none in src/ is longer than 60 lines (STYLE.md, "small
pieces"); ruff's complexity rules (C90, PLR0912, PLR0915 in pyproject.toml) bound their
branching."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "conveyor"
MAX_LINES = 60
# Files still waiting for their split, each with its reason (remove once it is done).
EXEMPT: dict[str, str] = {
    "worker/worker.py": "being split by the worker refactor",
}


def long_functions(root: Path, path: Path) -> list[str]:
    """`file:line name (n lines)` for each function (or method) over MAX_LINES lines."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            if lines > MAX_LINES:
                found.append(f"{path.relative_to(root)}:{node.lineno} {node.name} "
                             f"({lines} lines)")
    return found


def test_no_function_in_src_is_longer_than_60_lines() -> None:
    files = [p for p in sorted(SRC.rglob("*.py"))
             if p.relative_to(SRC).as_posix() not in EXEMPT]
    assert len(files) > 50  # the walk found the package
    assert [f for path in files for f in long_functions(SRC, path)] == []


def test_the_check_finds_a_long_method_and_passes_a_short_one(tmp_path: Path) -> None:
    body = "\n".join(f"        x{i} = {i}" for i in range(MAX_LINES))
    (tmp_path / "m.py").write_text("def short() -> None:\n    pass\n\n\n"
                                   f"class C:\n    async def long(self) -> None:\n{body}\n")
    assert long_functions(tmp_path, tmp_path / "m.py") == [f"m.py:6 long ({MAX_LINES + 1} lines)"]
