"""The sandbox each grading kernel runs in: bubblewrap (`bwrap`), seeing only what a kernel needs.

Inside, a kernel sees (`kernel_command`):
    a read-only root: the course's environment (the venv, `sys.prefix`, and the Python it points to,
        `sys.base_prefix`, wherever they are installed, /tmp included), /usr and /lib*, a few files
        of /etc, a read-only /dev;
    `course_lib` alone, read-only, at /opt/course/lib (first on PYTHONPATH, so the editable
        install's finder, which points at the repository, is never asked; the repository,
        solutions/ included, is not mounted at all);
    the course's data/ (datasets, course-tiny, converted models), read-only, at /opt/course/data
        ($COURSE_DATA), and the Hugging Face hub cache, if any, read-only (for $COURSE_MODEL);
    /home/student, its private writable scratch: a tmpfs of `scratch_mb` (its /tmp is a folder in it),
        so filling it stops at that size and touches no disk of yours; /dev/shm, a 64 MB tmpfs;
    the folder of its connection file and Unix sockets (the kernel talks to the grader over `ipc`,
        since it has no network);
    fd 3, the append-only record file the grader opened for it (the file's path is not mounted).
It does not see the grade cache, the gradebook, other submissions, the grader's processes
(own PID namespace: everything the kernel starts dies with it), the grader's environment (bwrap
is started with an empty one and its options come through a pipe, so /proc/1 shows neither), the
network, or the host's /tmp; it runs as `nobody` (uid 65534) in its own user namespace where the
kernel allows that, and cannot create another (`--disable-userns`).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["SandboxUnavailable", "unavailable_reason", "require", "kernel_options", "launch_argv", "options_bytes", "HOME", "NO_SANDBOX_WARNING"]

HOME = "/home/student"           # the kernel's cwd and $HOME: a private, size-limited tmpfs
SHM_BYTES = 64 * 1024**2         # /dev/shm (multiprocessing's semaphores, torch's shared tensors)
LIB = "/opt/course/lib"          # course_lib, read-only; first on PYTHONPATH
DATA = "/opt/course/data"        # data/, read-only; $COURSE_DATA
HUB = "/opt/course/hf-hub"       # the Hugging Face hub cache, read-only when there is one; $HF_HUB_CACHE
RECORD_FD = 3                    # the record file, opened outside by the launcher
_ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime", "nsswitch.conf",
        "passwd", "group", "hosts", "mime.types", "ssl/certs")
_PASS_ENV = ("COURSE_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "MPLBACKEND", "COURSE_MODEL", "LANG")
INSTALL_HINT = ("install it (Debian/Ubuntu: `sudo apt-get install -y bubblewrap`; Fedora: `sudo dnf install "
                "bubblewrap`; Arch: `sudo pacman -S bubblewrap`)")
NO_SANDBOX_WARNING = (
    "WARNING: --no-sandbox: every submission runs as YOU, with your files in reach. A submission can read "
    "solutions/, the grade cache and other students' notebooks (full marks without solving anything), "
    "rewrite the gradebook, the grade cache or course_lib, install code that runs in every later Python "
    "process (.pth files), reach the network, and leave processes running after grading. Use it only for "
    "submissions you trust.")


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot create its namespaces here; the message says what to do."""


def _mounts() -> list[str]:
    """Read-only binds of the system, the environment, course_lib and data/."""
    import course_lib
    from course_lib.data import data_dir
    args: list[str] = ["--ro-bind", "/usr", "/usr"]
    for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        p = Path("/") / top
        if p.is_symlink():
            args += ["--symlink", os.readlink(p), str(p)]
        elif p.is_dir():
            args += ["--ro-bind", str(p), str(p)]
    for name in _ETC:
        if (Path("/etc") / name).exists():
            args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    envs = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), Path(sys.executable).resolve().parent.parent}
    for prefix in sorted(envs):  # under /tmp too: the sandbox's /tmp is a folder of the scratch, created first
        if not str(prefix).startswith("/usr"):
            args += ["--ro-bind", str(prefix), str(prefix)]
    if Path(sys.prefix) != Path(sys.prefix).resolve():  # a venv reached through a symlink
        args += ["--symlink", str(Path(sys.prefix).resolve()), sys.prefix]
    args += ["--ro-bind", str(Path(course_lib.__file__).resolve().parent), f"{LIB}/course_lib"]
    if data_dir().is_dir():
        args += ["--ro-bind", str(data_dir().resolve()), DATA]
    if _hub_cache().is_dir():  # models downloaded for $COURSE_MODEL (public weights; no token lives here)
        args += ["--ro-bind", str(_hub_cache().resolve()), HUB]
    return args


def _hub_cache() -> Path:
    home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return Path(os.environ.get("HF_HUB_CACHE") or os.path.join(home, "hub"))


def _environment() -> list[str]:
    env = {"PATH": f"{sys.prefix}/bin:/usr/local/bin:/usr/bin:/bin", "HOME": HOME, "PYTHONPATH": LIB,
           "PYTHONDONTWRITEBYTECODE": "1", "COURSE_DATA": DATA, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_HOME": f"{HOME}/.cache/huggingface", "HF_HUB_CACHE": HUB, "MPLCONFIGDIR": f"{HOME}/.config/matplotlib",
           "TOKENIZERS_PARALLELISM": "false", "LANG": "C.UTF-8"}
    env.update({k: os.environ[k] for k in _PASS_ENV if k in os.environ})
    out = ["--clearenv"]  # bwrap itself is started with an empty environment too (runner._LAUNCHER)
    for key, value in env.items():
        out += ["--setenv", key, value]
    return out


def _namespaces(user: bool) -> list[str]:
    ns = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
          "--die-with-parent", "--hostname", "grading"]
    if user:  # and no nested user namespace: it would give the kernel capabilities (mounts of its own)
        ns += ["--unshare-user", "--uid", "65534", "--gid", "65534", "--disable-userns"]
    return ns + (["--cap-drop", "ALL"] if os.geteuid() == 0 else [])


def _base(user: bool, kernel_dir: str, scratch_mb: int) -> list[str]:
    """bwrap's options, in order: scratch first (so a venv under /tmp lands in it), then the read-only
    system, the sockets' folder, a read-only root and /dev."""
    return [*_namespaces(user), "--size", str(scratch_mb * 1024**2), "--tmpfs", HOME, "--dir", f"{HOME}/.tmp",
            "--symlink", f"{HOME[1:]}/.tmp", "/tmp",  # relative: bwrap resolves it inside the new root
            *_mounts(), "--proc", "/proc", "--dev", "/dev", "--size", str(SHM_BYTES), "--tmpfs", "/dev/shm",
            "--bind", kernel_dir, kernel_dir, "--remount-ro", "/", "--remount-ro", "/dev",
            "--chdir", HOME, *_environment()]


def launch_argv(options_fd: int, cmd: list[str]) -> list[str]:
    """bwrap's argv when its options come through the pipe `options_fd` (see `options_bytes`): they then
    never show in /proc/<pid>/cmdline inside the sandbox."""
    return [shutil.which("bwrap") or "bwrap", "--args", str(options_fd), "--", *cmd]


def options_bytes(options: list[str]) -> bytes:
    """What bwrap's `--args` reads: each option NUL-terminated."""
    return b"".join(o.encode() + b"\0" for o in options)


def _try(user: bool) -> str:
    """'' when a sandboxed python can import course_lib here, else what went wrong."""
    import tempfile
    with tempfile.TemporaryDirectory(prefix="course-sandbox-") as tmp:
        (Path(tmp) / "k").mkdir()
        read, write = os.pipe()
        os.write(write, options_bytes(_base(user, f"{tmp}/k", 64)))
        os.close(write)
        argv = launch_argv(read, [sys.executable, "-c", "import course_lib.grading.observe"])
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, env={}, pass_fds=(read,))
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{type(exc).__name__}: {exc}"
        finally:
            os.close(read)
        return "" if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["exit " + str(proc.returncode)])[-1]


@functools.lru_cache(maxsize=1)
def _probe() -> tuple[str, bool]:
    """(reason it cannot run or '', whether a user namespace works), found once per process."""
    if shutil.which("bwrap") is None:
        return "`bwrap` (bubblewrap) was not found on PATH", False
    if not _try(user=True):
        return "", True
    why = _try(user=False)
    return (f"bwrap cannot create its sandbox here ({why})" if why else ""), False


def unavailable_reason() -> str:
    """'' when the sandbox works on this machine, else one sentence saying why it does not."""
    return _probe()[0]


def require() -> None:
    """Raise SandboxUnavailable with one clear message (and how to fix it) when the sandbox cannot run."""
    why = unavailable_reason()
    if why:
        fix = INSTALL_HINT if shutil.which("bwrap") is None else \
            "allow unprivileged user namespaces, or run as root (in a container: give it CAP_SYS_ADMIN)"
        raise SandboxUnavailable(f"course grade runs every submission in a bubblewrap sandbox, but {why}: "
                                 f"{fix}, or pass --no-sandbox to grade without isolation (unsafe: "
                                 "the submissions can then read your solutions and rewrite your grades).")


def kernel_options(kernel_dir: Path, scratch_mb: int) -> list[str]:
    """bwrap's options for a kernel whose sockets live in `kernel_dir`, with `scratch_mb` of scratch."""
    require()
    return _base(_probe()[1], str(kernel_dir), scratch_mb)
