"""How a stored traceback reads on the job page: the task's own frames in full, conveyor's
and the standard library's frames (the worker loop, asyncio, thread pools) folded into one
line each run, so the frames that matter come first; lines wrap instead of running off
the right edge (the stylesheet's ``pre.traceback``).

A traceback is kept as text (it may come from another machine), so frames are told apart
by their file: inside the conveyor package or the standard library, by path.
"""

from __future__ import annotations

import re
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import conveyor

_FILE = re.compile(r'^  File "(?P<path>[^"]*)", line \d+')
_CONVEYOR = Path(conveyor.__file__).resolve().parent.as_posix() + "/"
_STDLIB = Path(sysconfig.get_paths()["stdlib"]).resolve().as_posix() + "/"
_STDLIB_ANYWHERE = re.compile(r"/lib/python3\.\d+/")


@dataclass(frozen=True)
class Block:
    kind: str  # "text" (headers, the exception), "frames" (the task's) or "folded"
    text: str
    count: int = 0  # frames in a block


def is_internal(path: str) -> bool:
    """A frame of conveyor itself or of the standard library (not a third-party one)."""
    path = path.replace("\\", "/")
    if path.startswith(("<frozen ", _CONVEYOR)) or "/site-packages/conveyor/" in path:
        return True
    if "/site-packages/" in path or "/dist-packages/" in path:
        return False  # the task's libraries: part of its story
    return path.startswith(_STDLIB) or bool(_STDLIB_ANYWHERE.search(path))


def blocks(text: str) -> list[Block]:
    """The traceback as blocks, in order, runs of internal frames folded."""
    out: list[Block] = []
    for kind, lines in _runs(text):
        chunk = "\n".join(lines)
        frames = sum(1 for line in lines if _FILE.match(line))
        if out and out[-1].kind == kind and kind != "text":
            last = out.pop()
            out.append(Block(kind, last.text + "\n" + chunk, last.count + frames))
        else:
            out.append(Block(kind, chunk, frames))
    return out


def _runs(text: str) -> list[tuple[str, list[str]]]:
    """(kind, lines) per frame (a File line and its indented code lines) or text line."""
    runs: list[tuple[str, list[str]]] = []
    for line in text.rstrip("\n").split("\n"):
        found = _FILE.match(line)
        if found:
            runs.append(("folded" if is_internal(found["path"]) else "frames", [line]))
        elif runs and (runs[-1][0] == "text" or line.startswith("    ")):
            runs[-1][1].append(line)  # more text, or a frame's code and ^^^ markers
        else:
            runs.append(("text", [line]))
    return runs
