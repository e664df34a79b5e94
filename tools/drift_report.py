"""After `make test-latest`: which packages moved past the lock, which notebook cells changed, which tests broke.

    python tools/drift_report.py --lock requirements/lock.txt .venv-latest/main.xml

Run by `make test-latest` with the newest releases installed; read it before `make lock`.
"""

from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout, before install
from course_lib.lockfile import lock_differences  # noqa: E402


def failures(junit: Path) -> list[tuple[str, str, str]]:
    """(file, test name, first line of the failure) for every failed or errored test case."""
    if not junit.exists():
        return [(str(junit), "(no report)", "the suite did not write this report")]
    rows = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        for bad in list(case.findall("failure")) + list(case.findall("error")):
            where = case.get("file") or case.get("classname", "")
            if where.endswith(".ipynb"):  # nbval: "lessons.04_topic.ipynb" -> "lessons/04_topic.ipynb"
                where = where[:-len(".ipynb")].replace(".", "/") + ".ipynb"
            else:  # pytest: "tests.test_x" -> "tests/test_x.py"
                where = where.replace(".", "/") + ".py"
            message = (bad.get("message") or bad.text or "").strip().splitlines()
            rows.append((where, case.get("name", ""), message[0][:160] if message else ""))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lock", type=Path, required=True)
    p.add_argument("junit", type=Path, nargs="+")
    args = p.parse_args(argv)

    moved = lock_differences(args.lock)
    print(f"== packages newer than the lock: {len(moved)}")
    for line in moved:
        print(f"   {line}")

    notebooks: dict[str, list[str]] = defaultdict(list)
    tests = []
    for junit in args.junit:
        for where, name, message in failures(junit):
            if ".ipynb" in where or ".ipynb" in name:
                notebooks[where.split("::")[0]].append(name)
            else:
                tests.append(f"{where}::{name}  {message}")
    print(f"== notebooks whose outputs changed: {len(notebooks)}")
    for path, cells in sorted(notebooks.items()):
        print(f"   {path}: {len(cells)} cell(s): {', '.join(cells)}")
    print(f"== tests that broke: {len(tests)}")
    for line in tests:
        print(f"   {line}")
    print("Next: fix what broke, then `make lock` and `make notebooks`, and commit the lock with the notebooks."
          if notebooks or tests else "Nothing changed: `make lock` is safe.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
