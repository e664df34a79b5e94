"""`course release`: exercises/NN_topic.ipynb generated from solutions/NN_topic.ipynb.

Answer regions become `# YOUR CODE HERE` / `raise NotImplementedError()`, hidden tests go,
outputs and execution counts are cleared, stub and test cells are tagged `raises-exception`
(so `pytest --nbval-lax exercises/` passes unsolved) and carry nbgrader metadata, locked as
nbgrader's own release locks them (test cells neither editable nor deletable, answer cells not
deletable): the notebook `nbgrader generate_assignment` makes from the same solution, cell for cell
(tests/test_nbgrader.py). Cell ids are the solution's own, so the output depends only on the
solution: `--check` can compare bytes.
"""

from __future__ import annotations

import copy
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

from course_lib.grading.markers import (count_checks, hidden_checks_without_expected, is_answer_cell,
                                        nbgrader_metadata, strip_hidden, strip_solution, test_spec)

__all__ = ["ReleaseConfig", "release_notebook", "release", "check_release"]


@dataclass
class ReleaseConfig:
    """Where `course release` reads and writes."""
    solutions: Path = Path("solutions")  # solutions/NN_topic.ipynb, the single source of truth
    exercises: Path = Path("exercises")  # generated, committed, never edited by hand


def _tag(cell, tag: str) -> None:
    tags = cell.metadata.setdefault("tags", [])
    if tag not in tags:
        tags.append(tag)


def _stable_id(stem: str, index: int, source: str) -> str:
    return hashlib.sha1(f"{stem}:{index}:{source}".encode()).hexdigest()[:12]


def release_notebook(solution: nbformat.NotebookNode, stem: str = "notebook",
                     warn: bool = False) -> nbformat.NotebookNode:
    """The exercise version of a solution notebook (a new object; `solution` is left as it was)."""
    nb = copy.deepcopy(solution)
    seen: set[str] = set()
    for index, cell in enumerate(nb.cells):
        cell.metadata.pop("nbgrader", None)
        if not cell.get("id"):
            cell["id"] = _stable_id(stem, index, cell.source)
        spec = test_spec(cell)
        if spec is not None:
            if spec.grade_id in seen:
                raise ValueError(f"{stem}: grade_id {spec.grade_id!r} is used by two test cells")
            seen.add(spec.grade_id)
            if warn and cell.cell_type == "code" and count_checks(cell.source) == 0:
                print(f"warning: {stem} {spec.grade_id}: no check.* call, graded on 'no exception' only",
                      file=sys.stderr)
            for name in hidden_checks_without_expected(cell.source) if warn else ():
                print(f"warning: {stem} {spec.grade_id}: hidden check {name} has no expected value, so "
                      "nbgrader only checks its type", file=sys.stderr)
            cell.metadata["nbgrader"] = nbgrader_metadata(cell)
            cell.metadata.update(deletable=False, editable=False)
            cell.source = strip_hidden(cell.source)
            _tag(cell, "raises-exception")
        elif is_answer_cell(cell):
            cell.metadata["nbgrader"] = nbgrader_metadata(cell)
            cell.metadata["deletable"] = False
            cell.source = strip_solution(cell.source, markdown=cell.cell_type == "markdown")
            if cell.cell_type == "code":
                _tag(cell, "raises-exception")
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            cell.metadata.pop("execution", None)
    return nb


def _render(solution_path: Path, warn: bool = False) -> str:
    nb = nbformat.read(solution_path, as_version=4)
    return nbformat.writes(release_notebook(nb, solution_path.stem, warn)) + "\n"


def release(config: ReleaseConfig) -> list[Path]:
    """Write every exercise notebook; returns the paths written."""
    written = []
    config.exercises.mkdir(parents=True, exist_ok=True)
    for sol in sorted(config.solutions.glob("*.ipynb")):
        out = config.exercises / sol.name
        text = _render(sol, warn=True)
        if not out.exists() or out.read_text(encoding="utf-8") != text:
            out.write_text(text, encoding="utf-8")
        written.append(out)
    return written


def check_release(config: ReleaseConfig) -> list[str]:
    """Problems that make exercises/ differ from what `release` would write (empty when in sync)."""
    problems = []
    solutions = {p.name for p in config.solutions.glob("*.ipynb")}
    for name in sorted(solutions):
        out = config.exercises / name
        if not out.exists():
            problems.append(f"{out}: missing (run `course release`)")
        elif out.read_text(encoding="utf-8") != _render(config.solutions / name):
            problems.append(f"{out}: differs from its solution (run `course release`; never edit by hand)")
    for extra in sorted(config.exercises.glob("*.ipynb")):
        if extra.name not in solutions:
            problems.append(f"{extra}: has no solutions/{extra.name}")
    return problems
