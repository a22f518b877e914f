"""Type checking that only gets stricter: mypy may report no error that is not in the baseline.

The modules `pyproject.toml` marks strict have no baseline entries, so any error there fails. Elsewhere the
errors mypy found when checking began are listed in `.ci/mypy-baseline.txt` (file, message and code, without
line numbers, so unrelated edits do not disturb them); a new one fails the run. Fixing one is welcome: the run
says so, and `--update` rewrites the baseline, which may then only shrink (code moved to another module takes
its errors along: the total is what may not grow).

    .venv/bin/python .ci/mypy_ratchet.py            # what ./run lint runs
    .venv/bin/python .ci/mypy_ratchet.py --update   # after fixing errors: shrink the baseline
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / ".ci" / "mypy-baseline.txt"
ERROR = re.compile(r"^(?P<path>[^:]+):(?P<line>\d+):(?:\d+:)? error: (?P<message>.*?)\s+\[(?P<code>[a-z-]+)\]$")


def mypy_errors() -> list[tuple[str, str]]:
    """(baseline key, the line as mypy printed it) for every error."""
    result = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary", "--no-pretty"], cwd=ROOT,
                            capture_output=True, text=True, check=False)
    if result.returncode not in (0, 1):
        raise SystemExit(f"mypy could not run:\n{result.stdout}{result.stderr}")
    errors = []
    for line in result.stdout.splitlines():
        match = ERROR.match(line.strip())
        if match:
            errors.append((f"{match['path']}: {match['message']}  [{match['code']}]", line.strip()))
    if result.returncode == 1 and not errors:
        raise SystemExit(f"mypy failed without an error this script can read:\n{result.stdout}{result.stderr}")
    return errors


def baseline() -> Counter[str]:
    if not BASELINE.exists():
        return Counter()
    lines = BASELINE.read_text(encoding="utf-8").splitlines()
    return Counter(line for line in lines if line.strip() and not line.startswith("#"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--update", action="store_true", help="rewrite the baseline to today's errors")
    args = parser.parse_args()
    errors = mypy_errors()
    found = Counter(key for key, _ in errors)
    known = baseline()
    if args.update:
        # Code moved between modules takes its errors along; only the total must not grow.
        if known and sum(found.values()) > sum(known.values()):
            print("refusing to grow the baseline; fix these instead:", file=sys.stderr)
            print("\n".join(sorted((found - known).elements())), file=sys.stderr)
            return 1
        header = "# mypy errors that predate type checking in CI; this list only shrinks (.ci/mypy_ratchet.py)\n"
        BASELINE.write_text(header + "".join(f"{key}\n" for key in sorted(found.elements())), encoding="utf-8")
        print(f"baseline: {sum(found.values())} errors in {len({k.split(':')[0] for k in found})} files")
        return 0
    new = found - known
    fixed = known - found
    if new:
        left = dict(new)
        print(f"mypy: {sum(new.values())} new type errors (not in .ci/mypy-baseline.txt):", file=sys.stderr)
        for key, line in errors:
            if left.get(key):
                left[key] -= 1
                print(f"  {line}", file=sys.stderr)
        return 1
    note = f"; {sum(fixed.values())} baseline errors are fixed: run it with --update" if fixed else ""
    print(f"mypy: no new type errors ({sum(found.values())} known{note})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
