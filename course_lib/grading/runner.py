"""Run one notebook in a fresh, sandboxed, memory-limited kernel and collect the recorder's events.

The kernel is this environment's `python3`, started by a tiny launcher that, outside the
sandbox, joins the kernel's own cgroup where the machine allows one (`limits.py`), sets
RLIMIT_AS, RLIMIT_FSIZE and (without a cgroup) RLIMIT_NPROC, so the limits hold before any
student code, opens the record file append-only as fd 3 (so its path never enters the sandbox),
then `exec`s bwrap with an empty environment and its options on a pipe (`sandbox.kernel_options`)
or, with `sandbox=False`, the kernel itself. The kernel talks to the grader over Unix sockets in
its own folder (it has no network); the grader's sockets take no message over `MAX_MESSAGE_BYTES`
and queue at most `QUEUE_MESSAGES`, and at most `max_output_bytes` of output (errors included)
is kept, so a flood costs the grader nothing. Each cell has a timeout that interrupts the kernel,
never past the notebook's own deadline; two timeouts in a row, a dead kernel or the deadline stop
the run. The record file is read after every cell, and each event is tagged with the cell that
was running when it was written: the grader accepts a test's records only from its own cell.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import zmq
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from course_lib.grading import limits, sandbox

__all__ = ["RunConfig", "RunResult", "run_notebook", "recorder_name", "new_nonce"]

MAX_RECORD_BYTES = 32_000_000    # the grader reads no more of the record file than this
MAX_MESSAGE_BYTES = 8 * 1024**2 # a bigger message from the kernel is dropped at the socket
QUEUE_MESSAGES = 8               # messages the grader's sockets queue; past that a flood is dropped

# argv[1]: {"cgroup": [cgroup.procs files], "rlimits": {name: n}, "record": path, "argv": [...],
#           "options": bwrap's options or null (no sandbox), "env": {} or null (inherit)}
_LAUNCHER = """import json, os, resource, sys
s = json.loads(sys.argv[1])
for procs in s["cgroup"]:
    with open(procs, "w") as f:
        f.write(str(os.getpid()))
for name, n in s["rlimits"].items():
    n > 0 and resource.setrlimit(getattr(resource, name), (n, n))
fd = os.open(s["record"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
fd != 3 and (os.dup2(fd, 3), os.close(fd))
os.set_inheritable(3, True)
argv = s["argv"]
if s["options"] is not None:
    r, w = os.pipe()
    os.write(w, b"".join(o.encode() + b"\\0" for o in s["options"]))
    os.close(w)
    os.set_inheritable(r, True)
    argv = [s["bwrap"], "--args", str(r), "--", *argv]
os.execve(argv[0], argv, os.environ if s["env"] is None else s["env"])
"""


@dataclass
class RunConfig:
    """Limits and isolation for one notebook run."""
    cell_timeout: int = 60           # seconds per cell before the kernel is interrupted
    memory_mb: int = 4096            # RLIMIT_AS of each kernel process (torch alone maps ~1-2 GB); 0 = none
    scratch_mb: int = 1024           # the kernel's writable scratch (a tmpfs in the sandbox) and largest file
    max_procs: int = 512             # tasks (processes and threads) of one kernel: a cgroup's pids.max
    max_output_bytes: int = 200_000  # outputs kept per notebook (error messages included); the rest is dropped
    total_timeout: float = 900.0     # seconds for the whole notebook, at most (grade.time_budget lowers it)
    time_slack: float = 60.0         # seconds a submission may take beyond 3x its solution's run
    startup_timeout: int = 60        # seconds for the kernel to start
    sandbox: bool = True             # run the kernel in bubblewrap (see sandbox.py); False is unsafe
    scratch_root: str = ""           # the folder for per-run scratch folders ('' = the system's temp folder)


@dataclass
class RunResult:
    """What happened: recorder events (each tagged with its `cell`), and why the run stopped early."""
    events: list[dict] = field(default_factory=list)
    stopped: str = ""                       # "" | "timeout" | "kernel died" | "error: ..."
    stopped_at: int | None = None           # index of the cell where it stopped (-1: the preamble)
    timed_out: set[int] = field(default_factory=set)  # cells interrupted after cell_timeout


def recorder_name(nonce: str) -> str:
    """The per-run global the rewritten test cells call."""
    return f"_course_{nonce}"


def new_nonce() -> str:
    """A per-run secret for the recorder's name and its record lines."""
    return secrets.token_hex(8)


class _KernelManager(AsyncKernelManager):
    """The python3 kernel of this environment, under the launcher, in the sandbox, over ipc."""
    config_: RunConfig = RunConfig()
    record_path = ""
    kernel_dir: Path = Path()
    cgroup: limits.KernelCgroup | None = None

    def client(self, **kwargs):
        """The client, whose sockets (made later, by start_channels) take the size and queue limits."""
        kc = super().client(**kwargs)
        kc.context.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        kc.context.setsockopt(zmq.RCVHWM, QUEUE_MESSAGES)
        return kc

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        cmd = super().format_kernel_cmd(extra_arguments)
        exe = cmd[0] if "/" in cmd[0] else (shutil.which(cmd[0]) or cmd[0])
        c = self.config_
        rlimits = {"RLIMIT_AS": c.memory_mb * 1024**2, "RLIMIT_FSIZE": c.scratch_mb * 1024**2,
                   "RLIMIT_NPROC": 0 if self.cgroup else limits.nproc_limit(c.max_procs)}
        spec = {"cgroup": self.cgroup.procs if self.cgroup else [], "rlimits": rlimits, "record": self.record_path,
                "argv": [exe, *cmd[1:]], "options": None, "env": None, "bwrap": shutil.which("bwrap") or "bwrap"}
        if c.sandbox:
            spec.update(options=sandbox.kernel_options(self.kernel_dir, c.scratch_mb), env={})
        return [sys.executable, "-c", _LAUNCHER, json.dumps(spec)]


class _CappedClient(NotebookClient):
    """A NotebookClient that keeps at most `max_output_bytes` of output, so a flood costs nothing.

    It builds its own kernel manager (so it owns it, and shuts the kernel down when done: the
    sandbox's PID namespace, and everything in it, ends with the kernel).
    """
    max_output_bytes = 200_000
    _kept = 0
    make_km = None

    def create_kernel_manager(self):
        self.km = self.make_km()
        return self.km

    def output(self, outs, msg, display_id, cell_index):  # noqa: D401 - nbclient's hook
        if self._kept > self.max_output_bytes:  # errors too: a cell can send a million of them
            return None
        self._kept += len(json.dumps(msg.get("content", {}), default=str))
        if self._kept > self.max_output_bytes:
            return None
        return super().output(outs, msg, display_id, cell_index)


def _preamble(nonce: str, modules: tuple[str, ...]) -> str:
    return (f"from course_lib.grading.observe import install as _course_install\n"
            f"{recorder_name(nonce)} = _course_install({sandbox.RECORD_FD}, {nonce!r}, {modules!r})\n"
            f"del _course_install")


class _Records:
    """The record file, read as it grows; each complete line is credited to the cell then running."""

    def __init__(self, path: Path, nonce: str):
        self.path, self.nonce, self.pos, self.events = path, nonce, 0, []

    def take(self, cell: int) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as f:
            f.seek(self.pos)
            data = f.read(max(0, MAX_RECORD_BYTES - self.pos))  # a flood of records cannot fill our memory
        end = data.rfind(b"\n") + 1  # a line still being written waits for the next read
        self.pos += end
        for line in data[:end].decode("utf-8", "replace").splitlines():
            head, _, body = line.partition(" ")
            if head != self.nonce:
                continue
            try:
                event = json.loads(body)
            except ValueError:
                continue
            if isinstance(event, dict):
                self.events.append({**event, "cell": cell})


def _kernel_manager(scratch: Path, config: RunConfig, cgroup: limits.KernelCgroup | None) -> _KernelManager:
    (scratch / "work").mkdir()
    (scratch / "kernel").mkdir()
    km = _KernelManager(kernel_name="python3", transport="ipc", ip=str(scratch / "kernel" / "k"))
    km.connection_file = str(scratch / "kernel" / "connection.json")
    km.config_, km.record_path, km.kernel_dir, km.cgroup = config, str(scratch / "records.log"), scratch / "kernel", cgroup
    return km


def run_notebook(nb: nbformat.NotebookNode, nonce: str, config: RunConfig,
                 modules: tuple[str, ...] = ()) -> RunResult:
    """Execute `nb` (whose test cells already call `recorder_name(nonce)`) after the recorder preamble.

    Cell indices in the result are `nb`'s own: the preamble is appended at the end of the
    client's copy and run first, without entering the kernel's input history (`In`).
    """
    if config.sandbox:
        sandbox.require()
    scratch = Path(tempfile.mkdtemp(prefix="course-grade-", dir=config.scratch_root or None))
    cgroup = limits.make_cgroup((config.memory_mb + config.scratch_mb + 64) * 1024**2, config.max_procs) \
        if config.memory_mb else limits.make_cgroup(1 << 62, config.max_procs)
    records = _Records(scratch / "records.log", nonce)
    nb = nbformat.from_dict(nb)
    cells = list(enumerate(nb.cells))
    preamble = nbformat.v4.new_code_cell(_preamble(nonce, modules))
    nb.cells.append(preamble)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    result = RunResult()
    client = _CappedClient(
        nb, timeout=config.cell_timeout,
        startup_timeout=config.startup_timeout, allow_errors=True, interrupt_on_timeout=True,
        kernel_name="python3", record_timing=False,
        error_on_timeout={"ename": "CellTimeoutError", "evalue": "cell timed out", "traceback": []})
    client.max_output_bytes = config.max_output_bytes
    client.make_km = lambda: _kernel_manager(scratch, config, cgroup)
    deadline = time.monotonic() + config.total_timeout
    current = -1  # the cell running now; -1 is the preamble
    try:
        with client.setup_kernel(cwd=str(scratch / "work"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
            if client.kc.iopub_channel.socket.getsockopt(zmq.MAXMSGSIZE) != MAX_MESSAGE_BYTES:
                raise RuntimeError("the grader's sockets did not take their size limit (jupyter_client changed?)")
            client.execute_cell(preamble, len(cells), store_history=False)
            error = next((o for o in preamble.outputs if o.get("output_type") == "error"), None)
            if error is not None:
                raise RuntimeError(f"the grader's first cell failed: {error.get('ename')}: {error.get('evalue')}")
            previous_timed_out = False
            for current, cell in cells:
                if cell.cell_type != "code":
                    continue
                if time.monotonic() > deadline:
                    result.stopped, result.stopped_at = "timeout", current
                    break
                start = time.monotonic()
                client.timeout = max(1, min(config.cell_timeout, int(deadline - start) + 1))
                try:
                    # the grader's test cells stay out of `In`, so their source is not one lookup away
                    client.execute_cell(cell, current, store_history="course_grader" not in cell.metadata)
                except CellTimeoutError:
                    result.timed_out.add(current)
                    result.stopped, result.stopped_at = "timeout", current
                    break
                finally:
                    records.take(current)
                timed_out = time.monotonic() - start >= config.cell_timeout
                if timed_out:
                    result.timed_out.add(current)
                    if previous_timed_out:
                        result.stopped, result.stopped_at = "timeout", current
                        break
                previous_timed_out = timed_out
    except DeadKernelError:
        result.stopped, result.stopped_at = "kernel died", current
    except Exception as exc:  # a kernel that never started, a broken channel: this submission only
        result.stopped, result.stopped_at = f"error: {type(exc).__name__}: {exc}"[:300], current
    finally:
        records.take(current)
        result.events = records.events
        if cgroup is not None:
            cgroup.kill_and_remove()
        shutil.rmtree(scratch, ignore_errors=True)
    return result
