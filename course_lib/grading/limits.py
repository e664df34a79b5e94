"""Limits on a grading kernel as a whole (all its processes together): a cgroup where this machine lets
the grader make one, else the kernel-wide rlimits that remain.

RLIMIT_AS holds per process, so four children of 1.5 GB each pass a 4 GB RLIMIT_AS. A cgroup of
the kernel's own (`memory.max`/`memory.limit_in_bytes`, which counts its tmpfs scratch too, and
`pids.max`) holds for everything the kernel starts. The grader makes one when it can write to the
cgroup tree (cgroup v2 with a delegated subtree, or v1 as root); `describe()` says which.
Without one, processes are limited by RLIMIT_NPROC (counted per user, so only where the grader is
not root) and memory per process by RLIMIT_AS; docs/instructors.md says what that leaves.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["KernelCgroup", "make_cgroup", "describe", "nproc_limit"]


@dataclass
class KernelCgroup:
    """One kernel's cgroup: `procs` are the files the launcher writes its pid to (one per v1 hierarchy)."""
    dirs: list[Path]
    procs: list[str]

    def kill_and_remove(self) -> None:
        """Kill whatever still runs in it, then remove it."""
        for d in self.dirs:
            if (d / "cgroup.kill").exists():
                with contextlib.suppress(OSError):
                    (d / "cgroup.kill").write_text("1")
            for _ in range(50):
                try:
                    pids = [int(p) for p in (d / "cgroup.procs").read_text().split()]
                except OSError:
                    break
                if not pids:
                    break
                for pid in pids:
                    with contextlib.suppress(OSError):
                        os.kill(pid, 9)
                time.sleep(0.02)
            with contextlib.suppress(OSError):
                d.rmdir()


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(mount point, fstype, super options) of every cgroup filesystem."""
    out = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            left, _, right = line.partition(" - ")
            fields, rest = left.split(), right.split()
            if rest and rest[0] in ("cgroup", "cgroup2"):
                out.append((fields[4], rest[0], set(rest[-1].split(","))))
    return out


def _own_paths() -> dict[str, str]:
    """controller (or '' for v2) -> this process's cgroup path."""
    out = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for c in controllers.split(",") if controllers else [""]:
                out[c] = path
    return out


def _try_v2(name: str, memory: int, pids: int) -> KernelCgroup | None:
    own = _own_paths().get("")
    for mount, fstype, _ in _mounts():
        if fstype != "cgroup2" or own is None:
            continue
        parent = Path(mount + own)
        enabled = (parent / "cgroup.subtree_control").read_text().split() if (parent / "cgroup.subtree_control").exists() else []
        if not {"memory", "pids"} <= set(enabled):
            continue
        d = parent / name
        try:
            d.mkdir()
            (d / "memory.max").write_text(str(memory))
            (d / "memory.swap.max").write_text("0") if (d / "memory.swap.max").exists() else None
            (d / "pids.max").write_text(str(pids))
        except OSError:
            with contextlib.suppress(OSError):
                d.rmdir()
            continue
        return KernelCgroup([d], [str(d / "cgroup.procs")])
    return None


def _try_v1(name: str, memory: int, pids: int) -> KernelCgroup | None:
    own = _own_paths()
    made: list[Path] = []
    for controller, files in (("memory", {"memory.limit_in_bytes": memory}), ("pids", {"pids.max": pids})):
        mount = next((m for m, t, opts in _mounts() if t == "cgroup" and controller in opts), None)
        if mount is None or controller not in own:
            break
        d = Path(mount + own[controller]) / name
        try:
            d.mkdir()
            made.append(d)
            for f, value in files.items():
                (d / f).write_text(str(value))
        except OSError:
            break
    else:
        return KernelCgroup(made, [str(d / "cgroup.procs") for d in made])
    KernelCgroup(made, []).kill_and_remove()
    return None


def make_cgroup(memory_bytes: int, max_procs: int) -> KernelCgroup | None:
    """A fresh cgroup limiting memory (RAM and tmpfs) and tasks, or None where this machine allows none."""
    if not _available():
        return None
    name = f"course-grade-{os.getpid()}-{secrets.token_hex(4)}"
    return _try_v2(name, memory_bytes, max_procs) or _try_v1(name, memory_bytes, max_procs)


@functools.lru_cache(maxsize=1)
def _available() -> str:
    """'v2' or 'v1' when a test cgroup can be made here, else ''."""
    name = f"course-grade-probe-{os.getpid()}"
    for version, make in (("v2", _try_v2), ("v1", _try_v1)):
        cg = make(name, 1 << 30, 64)
        if cg is not None:
            cg.kill_and_remove()
            return version
    return ""


def describe() -> str:
    """Which limits hold a kernel's processes together on this machine, in a few words."""
    if _available():
        return f"a cgroup {_available()} per kernel (memory incl. scratch, processes)"
    if os.geteuid() != 0:
        return "RLIMIT_NPROC (processes) and RLIMIT_AS per process (no cgroup can be made here)"
    return "RLIMIT_AS per process only (root without a writable cgroup: processes are not limited)"


def nproc_limit(max_procs: int) -> int:
    """RLIMIT_NPROC for a kernel when no cgroup can be made: the tasks this user already runs plus
    `max_procs` (the limit counts every task of the user); 0 (none) as root, where it does not hold."""
    if os.geteuid() == 0:
        return 0
    uid, count = str(os.getuid()), 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            with contextlib.suppress(OSError):
                status = Path(f"/proc/{pid}/status").read_text()
                fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
                if fields.get("Uid", "").split()[:1] == [uid]:
                    count += int(fields.get("Threads", "1"))
    return count + max_procs
