"""The lockfile still answers pyproject.toml: every declared requirement, runtime and extras, is pinned in
`requirements.lock` to a version it allows. Offline; `./run lint` runs it. After changing a requirement:

    .venv/bin/uv pip compile pyproject.toml --all-extras --generate-hashes --python-version 3.11 \\
        -o requirements.lock
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def main() -> int:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = [*project["dependencies"], *(r for extra in project["optional-dependencies"].values() for r in extra)]
    pins = {}
    for line in (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines():
        match = PIN.match(line)
        if match:
            pins[canonicalize_name(match[1])] = match[2]
    problems = []
    for text in declared:
        requirement = Requirement(text)
        pinned = pins.get(canonicalize_name(requirement.name))
        if pinned is None:
            problems.append(f"{text}: not in requirements.lock")
        elif not requirement.specifier.contains(pinned, prereleases=True):
            problems.append(f"{text}: requirements.lock pins {pinned}")
    if problems:
        print("requirements.lock is out of date with pyproject.toml:\n  " + "\n  ".join(problems), file=sys.stderr)
        print(__doc__.split("runs it. ", 1)[1], file=sys.stderr)
        return 1
    print(f"requirements.lock: {len(pins)} pinned packages cover pyproject.toml's {len(declared)} requirements")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
