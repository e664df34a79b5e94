"""Run one notebook in a fresh, memory-limited kernel and collect the recorder's events.

The kernel is this environment's `python3`, started under a tiny wrapper that sets
RLIMIT_AS before `exec`-ing ipykernel (so the limit holds before any student code), in a
scratch directory that is deleted afterwards. Each cell has a timeout that interrupts the
kernel; two timeouts in a row, a dead kernel or the overall deadline stop the run.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

__all__ = ["RunConfig", "RunResult", "run_notebook", "recorder_name"]

_WRAPPER = ("import os, resource, sys; n = int(sys.argv[1]);"
            " n > 0 and resource.setrlimit(resource.RLIMIT_AS, (n, n));"
            " os.execv(sys.argv[2], sys.argv[2:])")


@dataclass
class RunConfig:
    """Limits for one notebook run."""
    cell_timeout: int = 60           # seconds per cell before the kernel is interrupted
    memory_mb: int = 4096            # RLIMIT_AS of the kernel (torch alone maps ~1-2 GB); 0 = none
    max_output_bytes: int = 200_000  # outputs kept per notebook; the rest is dropped
    total_timeout: float = 900.0     # seconds for the whole notebook
    startup_timeout: int = 60        # seconds for the kernel to start


@dataclass
class RunResult:
    """What happened: recorder events, and why the run stopped early (if it did)."""
    events: list[dict] = field(default_factory=list)
    stopped: str = ""                       # "" | "timeout" | "kernel died" | "error: ..."
    stopped_at: int | None = None           # index of the cell where it stopped
    timed_out: set[int] = field(default_factory=set)  # cells interrupted after cell_timeout
    notebook: Any = None                    # the executed notebook (outputs capped), for debugging


def recorder_name(nonce: str) -> str:
    """The per-run global the rewritten test cells call."""
    return f"_course_{nonce}"


class _LimitedKernelManager(AsyncKernelManager):
    """The python3 kernel of this environment, started under the RLIMIT_AS wrapper."""
    memory_bytes = 0

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        cmd = super().format_kernel_cmd(extra_arguments)
        return [sys.executable, "-c", _WRAPPER, str(self.memory_bytes), *cmd]


class _CappedClient(NotebookClient):
    """A NotebookClient that keeps at most `max_output_bytes` of output, so a flood costs nothing."""
    max_output_bytes = 200_000
    _kept = 0

    def output(self, outs, msg, display_id, cell_index):  # noqa: D401 - nbclient's hook
        size = len(json.dumps(msg.get("content", {}), default=str))
        self._kept += size
        if self._kept > self.max_output_bytes and msg.get("msg_type") != "error":
            return None
        return super().output(outs, msg, display_id, cell_index)


def _preamble(record_path: Path, nonce: str, modules: tuple[str, ...]) -> str:
    name = recorder_name(nonce)
    return (f"from course_lib.grading.observe import install as _course_install\n"
            f"{name} = _course_install({str(record_path)!r}, {nonce!r}, {modules!r})\n"
            f"del _course_install")


def _read_events(path: Path, nonce: str) -> list[dict]:
    events = []
    if not path.exists():
        return events
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        head, _, body = line.partition(" ")
        if head != nonce:
            continue
        try:
            events.append(json.loads(body))
        except ValueError:
            continue
    return events


def run_notebook(nb: nbformat.NotebookNode, nonce: str, config: RunConfig,
                 modules: tuple[str, ...] = ()) -> RunResult:
    """Execute `nb` (whose test cells already call `recorder_name(nonce)`) after the recorder preamble."""
    scratch = Path(tempfile.mkdtemp(prefix="course-grade-"))
    work = scratch / "work"
    work.mkdir()
    record_path = scratch / "records.log"
    nb = nbformat.from_dict(nb)
    nb.cells.insert(0, nbformat.v4.new_code_cell(_preamble(record_path, nonce, modules)))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    result = RunResult()
    client = _CappedClient(
        nb, timeout=config.cell_timeout, startup_timeout=config.startup_timeout, allow_errors=True,
        interrupt_on_timeout=True, kernel_name="python3", record_timing=False,
        error_on_timeout={"ename": "CellTimeoutError", "evalue": "cell timed out", "traceback": []},
        kernel_manager_class=_LimitedKernelManager, resources={"metadata": {"path": str(work)}})
    client.max_output_bytes = config.max_output_bytes
    _LimitedKernelManager.memory_bytes = config.memory_mb * 1024 * 1024
    deadline = time.monotonic() + config.total_timeout
    try:
        with client.setup_kernel(cwd=str(work), stderr=subprocess.DEVNULL):
            previous_timed_out = False
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                if time.monotonic() > deadline:
                    result.stopped, result.stopped_at = "timeout", index - 1
                    break
                start = time.monotonic()
                try:
                    client.execute_cell(cell, index)
                    if index == 0 and any(o.get("output_type") == "error" for o in cell.outputs):
                        err = next(o for o in cell.outputs if o.get("output_type") == "error")
                        result.stopped = f"error: the grader's first cell failed: {err.get('ename')}: {err.get('evalue')}"
                        result.stopped_at = -1
                        break
                except CellTimeoutError:
                    result.timed_out.add(index - 1)
                    result.stopped, result.stopped_at = "timeout", index - 1
                    break
                timed_out = time.monotonic() - start >= config.cell_timeout
                if timed_out:
                    result.timed_out.add(index - 1)  # -1: indices of the caller's notebook
                    if previous_timed_out:
                        result.stopped, result.stopped_at = "timeout", index - 1
                        break
                previous_timed_out = timed_out
    except DeadKernelError:
        result.stopped = "kernel died"
        result.stopped_at = index - 1 if "index" in locals() else 0
    except Exception as exc:  # a kernel that never started, a broken channel: this submission only
        result.stopped = f"error: {type(exc).__name__}: {exc}"[:300]
        result.stopped_at = index - 1 if "index" in locals() else 0
    finally:
        result.events = _read_events(record_path, nonce)
        result.notebook = nb
        shutil.rmtree(scratch, ignore_errors=True)
    if result.stopped_at is not None and result.stopped_at < 0:
        result.stopped = result.stopped or "error: the grader's first cell failed"
    return result


def new_nonce() -> str:
    """A per-run secret for the recorder's name and its record lines."""
    return secrets.token_hex(8)


def dump(result: RunResult) -> dict[str, Any]:
    """A RunResult as plain data (for caches and debugging)."""
    return {"events": result.events, "stopped": result.stopped, "stopped_at": result.stopped_at,
            "timed_out": sorted(result.timed_out)}
