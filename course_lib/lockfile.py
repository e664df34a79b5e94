"""The locked environment: which exact versions the committed notebooks were executed with.

`requirements/lock.txt` is written by `make lock` (pip-compile, with hashes); `make install`
installs exactly that. This module reads it with the standard library only, so the Makefile can
run it before anything is installed:

    python -m course_lib.lockfile --without torch requirements/lock.txt   # the lock minus torch

`course doctor` uses `lock_differences()` to tell a student why their numbers may differ.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import sys
from pathlib import Path

__all__ = ["LOCK_PATH", "locked_versions", "lock_differences", "without"]

LOCK_PATH = Path(__file__).resolve().parent.parent / "requirements" / "lock.txt"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _base(version: str) -> str:
    """'2.13.0+cpu' -> '2.13.0': the CPU and CUDA builds of one torch release are the same release."""
    return version.split("+", 1)[0]


def locked_versions(path: Path = LOCK_PATH) -> dict[str, str]:
    """{canonical package name: pinned version} for every `name==version` line of a pip-compile lock."""
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        m = _PIN.match(line)
        if m:
            pins[_canonical(m.group(1))] = m.group(2)
    return pins


def lock_differences(path: Path = LOCK_PATH) -> list[str]:
    """One sentence per locked package whose installed version differs from the lock (lesson 00)."""
    if not path.exists():
        return [f"no lock file at {path}: installed versions were not compared with the course's"]
    # every copy on sys.path: packages such as setuptools put their vendored copies there too
    # (setuptools/_vendor/packaging-*.dist-info), so a name can appear more than once
    installed: dict[str, list[str]] = {}
    for dist in importlib.metadata.distributions():
        installed.setdefault(_canonical(dist.metadata["Name"]), []).append(dist.version)
    lines = []
    for name, pinned in sorted(locked_versions(path).items()):
        have = installed.get(name)
        if not have:
            lines.append(f"{name} is not installed; the lessons were executed with {pinned}")
        elif _base(pinned) not in map(_base, have):
            lines.append(f"{name} {have[0]} installed, the lessons were executed with {pinned}: "
                         "numbers may differ slightly")
    return lines


def without(path: Path, names: set[str]) -> str:
    """The lock's text with the blocks of `names` removed (the CUDA install replaces torch's block)."""
    keep, skipping = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        m = _PIN.match(line)
        if m or not line.startswith((" ", "\t")):
            skipping = bool(m) and _canonical(m.group(1)) in names
        if not skipping:
            keep.append(line)
    return "\n".join(keep) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Print a pip-compile lock without some packages' blocks.")
    p.add_argument("lock", type=Path)
    p.add_argument("--without", action="append", default=[], metavar="PACKAGE")
    args = p.parse_args(argv)
    sys.stdout.write(without(args.lock, {_canonical(n) for n in args.without}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
