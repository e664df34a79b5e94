"""Building the notebook the grader runs: the submission's cells, with the solution's test cells.

The graded notebook is the submission's own cells, minus anything that looks like a test cell,
with each of the *solution's* test cells (rewritten by `markers.rewrite_test_cell`) inserted
after the cell it follows in the solution. Each test gets a one-time token, carried in the
grade_id its rewritten cell records under (`"q1_count:9c1e..."`), so a record written by
anything but that cell's own code is not credited. For a student's run, the `expected`
arguments of hidden checks are removed: the verdict compares with the solution's observations
outside the kernel, so hidden expected values never reach the student's code.
"""

from __future__ import annotations

import ast
import secrets
import textwrap
from dataclasses import dataclass, field
from typing import Any

import nbformat

from course_lib.grading.markers import (BEGIN_SOLUTION, hidden_lines, is_answer_cell, rewrite_test_cell,
                                        test_spec)
from course_lib.grading.runner import recorder_name

__all__ = ["Graded", "build_graded", "drop_hidden_expected"]


@dataclass
class Graded:
    """The notebook to run, and what the scorer needs to know about its test cells."""
    notebook: Any                                          # nbformat notebook, test cells rewritten
    index_of: dict[str, int] = field(default_factory=dict)  # grade_id -> its cell's index in `notebook`
    missing: dict[str, str] = field(default_factory=dict)   # grade_id -> why it cannot run
    tokens: dict[str, str] = field(default_factory=dict)    # grade_id -> one-time token of its records
    hidden: dict[str, str] = field(default_factory=dict)    # grade_id -> its hidden tests' source

    def record_id(self, gid: str) -> str:
        """The grade_id as the test's records carry it: `gid:token`."""
        return f"{gid}:{self.tokens[gid]}"


def _anchor_line(source: str) -> str:
    """The first line outside a solution region (`def f(x):`), to find a cell whose id changed."""
    for line in source.splitlines():
        if line.strip() == BEGIN_SOLUTION:
            return ""
        if line.strip() and not line.strip().startswith("#"):
            return line.strip()
    return ""


def _match_cells(sol_cells: list, sub_cells: list) -> dict[int, int]:
    """Solution cell index -> submission cell index: by cell id, then by an answer cell's first line."""
    by_id = {c.get("id"): i for i, c in enumerate(sub_cells) if c.get("id")}
    matched = {j: by_id[c.get("id")] for j, c in enumerate(sol_cells) if not test_spec(c) and c.get("id") in by_id}
    taken = set(matched.values())
    for j, cell in enumerate(sol_cells):  # ids lost (notebook copied, cells re-created): match a signature
        line = _anchor_line(cell.source) if is_answer_cell(cell) and j not in matched else ""
        for i, sub in enumerate(sub_cells):
            if line and i not in taken and sub.cell_type == cell.cell_type and line in sub.source:
                matched[j] = i
                taken.add(i)
                break
    return matched


def _placements(sol_cells: list, matched: dict[int, int]) -> tuple[dict[int, list[int]], dict[str, str]]:
    """(submission cell index -> solution test cells placed after it (-1: at the top), missing answers)."""
    after: dict[int, list[int]] = {}
    missing: dict[str, str] = {}
    anchor_of: dict[int, int] = {}
    pending_answers: list[int] = []
    for j, cell in enumerate(sol_cells):
        spec = test_spec(cell)
        if spec is None:
            if is_answer_cell(cell) and cell.cell_type == "code":
                pending_answers.append(j)
            continue
        lost = [k for k in pending_answers if k not in matched]
        pending_answers = []
        if lost:
            missing[spec.grade_id] = f"missing answer cell {sol_cells[lost[0]].get('id')!r} (deleted or replaced?)"
            continue
        anchor = -1
        for k in range(j - 1, -1, -1):
            if k in anchor_of or k in matched:
                anchor = anchor_of[k] if k in anchor_of else matched[k]
                break
        anchor_of[j] = anchor
        after.setdefault(anchor, []).append(j)
    return after, missing


def _hidden_source(source: str) -> str:
    """A test cell's hidden lines, as written and as `ast.unparse` spells them in the graded cell."""
    lines = source.splitlines()
    text = "\n".join(lines[n - 1] for n in sorted(hidden_lines(source)))
    try:
        return text + "\n" + ast.unparse(ast.parse(textwrap.dedent(text)))
    except SyntaxError:
        return text


def drop_hidden_expected(source: str, recorder: str) -> str:
    """Remove the `expected` argument of every hidden `recorder.observe(...)` call in a rewritten cell."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "observe"
                and isinstance(node.func.value, ast.Name) and node.func.value.id == recorder
                and len(node.args) > 1 and isinstance(node.args[1], ast.Constant) and node.args[1].value is True):
            node.args = node.args[:5]  # gid, hidden, kind, name, value
            node.keywords = [k for k in node.keywords if k.arg not in ("expected", None)]
    return ast.unparse(tree)


def build_graded(solution: Any, submission: Any, nonce: str, hidden_expected: bool = False) -> Graded:
    """The graded notebook; `hidden_expected=True` keeps hidden checks' expected values (the solution's run)."""
    sol_cells = solution.cells
    test_ids = {c.get("id") for c in sol_cells if test_spec(c)}
    sub_cells = [c for c in submission.cells
                 if not test_spec(c) and c.get("id") not in test_ids
                 and not c.get("metadata", {}).get("nbgrader", {}).get("grade")]
    after, missing = _placements(sol_cells, _match_cells(sol_cells, sub_cells))
    graded = Graded(nbformat.v4.new_notebook(metadata=dict(solution.metadata)), missing=missing)
    recorder = recorder_name(nonce)

    def place(anchor: int) -> None:
        for j in after.get(anchor, []):
            gid = test_spec(sol_cells[j]).grade_id
            graded.tokens[gid] = secrets.token_hex(8)
            src = rewrite_test_cell(sol_cells[j].source, graded.record_id(gid), recorder)
            if not hidden_expected:
                src = drop_hidden_expected(src, recorder)
            graded.hidden[gid] = _hidden_source(sol_cells[j].source)
            graded.index_of[gid] = len(graded.notebook.cells)
            graded.notebook.cells.append(nbformat.v4.new_code_cell(src, metadata={"course_grader": "test"}))

    place(-1)
    for i, cell in enumerate(sub_cells):
        new = nbformat.from_dict(dict(cell))
        if new.cell_type == "code":
            new.outputs, new.execution_count = [], None
        graded.notebook.cells.append(new)
        place(i)
    return graded
