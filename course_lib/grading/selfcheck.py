"""`course check exercises/NN_topic.ipynb`: a student's own check, part by part, on the visible tests.

Runs the notebook top to bottom in a fresh kernel (errors do not stop it, as the answer cells'
`raises-exception` tags allow), then reads each test cell's outcome: it passes (no error), it is not
answered yet (its answer cells above still hold the stub, or the error is messages.py's "not answered
yet"), or it fails with the visible test's message. Hidden tests are not in an exercise notebook, so
a part that passes here can still lose points when the instructor grades.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import nbformat

from course_lib.grading.markers import STUB, nbgrader_metadata, test_spec
from course_lib.grading.messages import NOT_ANSWERED

__all__ = ["Part", "CheckArgs", "run_notebook", "parts", "report", "COMMANDS"]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_LABEL = re.compile(r"^#+\s*(Part \d+|Q\d+)\b")


@dataclass
class Part:
    """One graded part: its label, points, and what its visible tests said."""

    label: str
    grade_id: str
    points: int
    status: str  # "pass" | "not answered" | "fail"
    message: str = ""


def _is_stub(cell) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader") or nbgrader_metadata(cell) or {}
    lines = {line.strip() for line in cell.get("source", "").splitlines()}
    return bool(meta.get("solution")) and all(s in lines for s in STUB)


def _error(cell) -> dict | None:
    return next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"), None)


def _message(error: dict) -> str:
    shown = _ANSI.sub("", "\n".join(error.get("traceback", []))).strip()
    if error.get("ename") in ("CheckFailed", "AssertionError") and error.get("evalue"):
        return str(error["evalue"])
    if shown.startswith(NOT_ANSWERED) or shown.startswith("✗ "):
        return shown.removeprefix("✗ ")
    return f"{error.get('ename')}: {error.get('evalue')}"


def parts(nb: nbformat.NotebookNode) -> list[Part]:
    """The graded parts of an executed notebook, in order."""
    found, label, stub_above = [], "", False
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = _LABEL.match(cell.source.lstrip())
            label = match.group(1) if match else label
            continue
        spec = test_spec(cell)
        if spec is None:
            stub_above = stub_above or _is_stub(cell)
            continue
        error = _error(cell)
        if error is None:
            status, message = "pass", ""
        elif (stub_above and error.get("ename") in ("NameError", "NotImplementedError")) or \
                _message(error).startswith(NOT_ANSWERED):
            status, message = "not answered", _message(error) if _message(error).startswith(NOT_ANSWERED) \
                else f"{NOT_ANSWERED}: the answer cell above still holds `raise NotImplementedError()`."
        else:
            status, message = "fail", _message(error)
        found.append(Part(label or spec.grade_id, spec.grade_id, spec.points, status, message))
        stub_above = False
    return found


def run_notebook(path: Path, timeout: int = 600) -> nbformat.NotebookNode:
    """The notebook executed top to bottom in a fresh kernel of this Python, every cell run."""
    import tempfile

    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory() as sockets:  # a local socket file, not TCP
        km = KernelManager(kernel_name="python3", transport="ipc", ip=str(Path(sockets) / "kernel"))
        NotebookClient(nb, km=km, timeout=timeout, allow_errors=True, record_timing=False,
                       resources={"metadata": {"path": str(path.resolve().parent)}}).execute()
    return nb


def report(path: Path | str, found: list[Part]) -> str:
    """`3 of 5 parts pass (8 of 12 points)`, then one line per part."""
    passed = [p for p in found if p.status == "pass"]
    lines = [f"{path}: {len(passed)} of {len(found)} parts pass ({sum(p.points for p in passed)} of "
             f"{sum(p.points for p in found)} points on the visible tests)"]
    width = max((len(p.label) for p in found), default=0)
    for p in found:
        mark = "✓" if p.status == "pass" else "✗"
        lines.append(f"  {mark} {p.label:{width}s}  {'passes' if p.status == 'pass' else p.message}")
    lines.append("Your instructor also grades with hidden tests: a part that passes here can still lose points.")
    return "\n".join(lines)


@dataclass
class CheckArgs:
    """Options of `course check NOTEBOOK`."""

    POSITIONAL: ClassVar[str] = "notebook"

    notebook: Path = field(metadata={"help": "your exercise notebook, e.g. exercises/08_beyond_one_gpu.ipynb "
                                             "(may be given first, without --notebook)"})
    timeout: int = field(default=600, metadata={"help": "seconds per cell"})


def _run(args: CheckArgs) -> int:
    path = Path(args.notebook)
    if not path.is_file() or path.suffix != ".ipynb":
        raise FileNotFoundError(f"{path} is not a notebook: give your exercise, e.g. "
                                "`course check exercises/08_beyond_one_gpu.ipynb`.")
    print(f"running {path} in a fresh kernel (as `Restart and run all` would)...", file=sys.stderr, flush=True)
    found = parts(run_notebook(path, args.timeout))
    if not found:
        raise ValueError(f"{path} has no graded test cells: `course check` is for the notebooks in exercises/.")
    print(report(path, found))
    return 0 if all(p.status == "pass" for p in found) else 1


COMMANDS = {"check": ("check your exercise notebook part by part on its visible tests: answered, passing, and "
                      "the tests' messages (hidden tests are your instructor's)", (CheckArgs,), _run)}
