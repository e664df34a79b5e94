"""Build the committed notebooks from their percent-format sources, and run them.

    python tools/build_notebooks.py sources/lessons/00_start_here.py [more sources ...]
    python tools/build_notebooks.py --all
    python tools/build_notebooks.py --prose-only sources/lessons/06_instruction_tuning.py

sources/lessons/NN_x.py -> lessons/NN_x.ipynb, sources/solutions/NN_x.py -> solutions/NN_x.ipynb.
Each notebook is executed top to bottom in a fresh kernel (the course's .venv) and saved with
its outputs, without execution timing metadata, so re-running it only changes what changed.
Prints each notebook's wall time: the budget is 90 s on a 2-core CPU. --prose-only copies the Markdown
cells of a source into its executed notebook without running it, when no code cell changed (a wording
fix to a lesson that takes minutes to run); it refuses otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

from course_lib.grading.markers import nbgrader_metadata

ROOT = Path(__file__).resolve().parent.parent
# The course's own kernel (`make install` registers it, pointing at .venv's python): a notebook opened
# in VS Code or another Jupyter then runs where course_lib is installed, not in some other `python3`.
KERNEL = {"name": "fine-tuning-course", "display_name": "Fine-tuning course (.venv)", "language": "python"}


def target_of(source: Path) -> Path:
    rel = source.resolve().relative_to(ROOT / "sources")
    return ROOT / rel.parent / (rel.stem + ".ipynb")


def language_info() -> dict:
    """What the course's kernel reports and JupyterLab writes into a notebook it opens (Python's version
    included): stored as is, so opening and saving a notebook changes nothing (tests/test_jupyterlab.py)."""
    from ipykernel.ipkernel import IPythonKernel

    return dict(IPythonKernel.language_info)


def clean_metadata(nb: nbformat.NotebookNode, nbgrader: bool = False) -> None:
    """Only the kernel and language at notebook level; with `nbgrader`, nbgrader's metadata on
    answer and test cells (so each solution is an `nbgrader generate_assignment` source)."""
    nb.metadata = {"kernelspec": KERNEL, "language_info": language_info()}
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        cell.metadata.pop("nbgrader", None)
        meta = nbgrader_metadata(cell) if nbgrader else None
        if meta:
            cell.metadata["nbgrader"] = meta


def build(source: Path, execute: bool = True, timeout: int = 600) -> float:
    nb = jupytext.read(source, fmt="py:percent")
    nb.nbformat, nb.nbformat_minor = 4, 5
    for i, cell in enumerate(nb.cells):  # stable ids: no churn between builds
        cell.id = f"{source.stem[:2]}-{i:03d}"
    out = target_of(source)
    seconds = 0.0
    if execute:
        start = time.perf_counter()
        NotebookClient(nb, timeout=timeout, kernel_name=KERNEL["name"],
                       resources={"metadata": {"path": str(out.parent)}}).execute()
        seconds = time.perf_counter() - start
    clean_metadata(nb, nbgrader=out.parent.name == "solutions")
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out)
    return seconds


def sync_prose(source: Path) -> None:
    """Copy the Markdown cells of `source` into its executed notebook; every code cell must be unchanged."""
    new, out = jupytext.read(source, fmt="py:percent"), target_of(source)
    old = nbformat.read(out, as_version=4)
    shape = [(c.cell_type, c.source if c.cell_type == "code" else None) for c in new.cells]
    if shape != [(c.cell_type, c.source if c.cell_type == "code" else None) for c in old.cells]:
        raise SystemExit(f"{source}: a code cell (or the cells' order) changed since {out.name} was executed; "
                         f"build it without --prose-only")
    for cell, fresh in zip(old.cells, new.cells):
        if cell.cell_type == "markdown":
            cell.source = fresh.source
    nbformat.write(old, out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sources", nargs="*", type=Path)
    p.add_argument("--all", action="store_true", help="every source under sources/")
    p.add_argument("--no-execute", action="store_true")
    p.add_argument("--prose-only", action="store_true", help="only copy Markdown cells into the executed notebook")
    args = p.parse_args(argv)
    sources = sorted((ROOT / "sources").rglob("*.py")) if args.all else args.sources
    for src in sources:
        if args.prose_only:
            sync_prose(src)
            print(f"{target_of(src).relative_to(ROOT)}: prose updated", flush=True)
            continue
        seconds = build(src, execute=not args.no_execute)
        print(f"{target_of(src).relative_to(ROOT)}: {seconds:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
