"""The floors in pyproject.toml are the versions scripts/test-lowest installs (.ci/lowest.txt):
raising or adding a floor without updating the constraints (or the reverse) fails here."""

from __future__ import annotations

import re
import tomllib

from packaging.version import Version

from tests.helpers import ROOT

REQUIREMENT = re.compile(r"^([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*>=\s*([0-9][^,;\s]*)")


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def floors() -> dict[str, Version]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra, listed in project["optional-dependencies"].items():
        if extra != "all":
            requirements += listed
    found: dict[str, Version] = {}
    for requirement in requirements:
        match = REQUIREMENT.match(requirement)
        assert match, f"{requirement!r} has no floor (name>=version)"
        found[normalized(match.group(1))] = Version(match.group(3))
    return found


def pins() -> dict[str, Version]:
    lines = (ROOT / ".ci" / "lowest.txt").read_text().splitlines()
    pairs = [line.split("==") for line in lines if line.strip() and not line.startswith("#")]
    return {normalized(name): Version(version) for name, version in pairs}


def test_lowest_constraints_pin_every_floor_exactly() -> None:
    assert pins() == floors()


def test_all_extra_is_every_other_extra() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    (everything,) = extras["all"]
    named = set(everything.removeprefix("conveyor[").removesuffix("]").split(","))
    assert named == set(extras) - {"all"}
