"""The markers of EXERCISES.md, and the rewrite that turns a test cell into observations.

`### BEGIN SOLUTION` / `### END SOLUTION` delimit a student's answer; `### BEGIN HIDDEN TESTS`
/ `### END HIDDEN TESTS` delimit tests that release removes. A test cell is a cell whose
metadata holds `{"course": {"grade_id": ..., "points": ...}}`.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

from course_lib.grading.verdict import KINDS

__all__ = ["BEGIN_SOLUTION", "END_SOLUTION", "BEGIN_HIDDEN", "END_HIDDEN", "TestSpec",
           "test_spec", "is_answer_cell", "strip_solution", "strip_hidden", "hidden_lines",
           "rewrite_test_cell", "count_checks", "hidden_checks_without_expected", "nbgrader_metadata"]

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
MARKDOWN_STUB = "YOUR ANSWER HERE"


@dataclass(frozen=True)
class TestSpec:
    """A graded test cell's identity, from its `course` metadata."""
    grade_id: str
    points: int


def test_spec(cell: Any) -> TestSpec | None:
    """The cell's TestSpec when it is a test cell (metadata `course.grade_id`), else None."""
    course = cell.get("metadata", {}).get("course")
    if not isinstance(course, dict) or "grade_id" not in course:
        return None
    return TestSpec(str(course["grade_id"]), int(course.get("points", 1)))


def is_answer_cell(cell: Any) -> bool:
    """True for a cell holding a `### BEGIN SOLUTION` region."""
    return any(line.strip() == BEGIN_SOLUTION for line in cell.get("source", "").splitlines())


def nbgrader_metadata(cell: Any) -> dict | None:
    """nbgrader's cell metadata (schema 3) for a test or answer cell, else None.

    Written into solutions/ by tools/build_notebooks.py, so each is a valid `nbgrader
    generate_assignment` source, and into exercises/ by `course release`.
    """
    spec = test_spec(cell)
    if spec is not None:
        return {"grade": True, "solution": False, "locked": True, "grade_id": spec.grade_id,
                "points": spec.points, "schema_version": 3}
    if is_answer_cell(cell):
        return {"grade": False, "solution": True, "locked": False, "grade_id": f"answer-{cell['id']}",
                "schema_version": 3}
    return None


def _regions(source: str, begin: str, end: str) -> list[tuple[int, int]]:
    """(first, last) line indices of each begin..end region, markers included."""
    out, start = [], None
    for i, line in enumerate(source.splitlines()):
        if line.strip() == begin and start is None:
            start = i
        elif line.strip() == end and start is not None:
            out.append((start, i))
            start = None
    if start is not None:
        raise ValueError(f"'{begin}' without a matching '{end}' in:\n{source[:200]}")
    return out


def strip_solution(source: str, markdown: bool = False) -> str:
    """Replace each solution region by the stub, at the indentation of its BEGIN marker."""
    lines = source.splitlines()
    for first, last in reversed(_regions(source, BEGIN_SOLUTION, END_SOLUTION)):
        indent = lines[first][: len(lines[first]) - len(lines[first].lstrip())]
        stub = [MARKDOWN_STUB] if markdown else [indent + s for s in STUB]
        lines[first:last + 1] = stub
    return "\n".join(lines)


def strip_hidden(source: str) -> str:
    """Remove hidden-test regions (markers included) and the blank lines they leave at the end."""
    lines = source.splitlines()
    for first, last in reversed(_regions(source, BEGIN_HIDDEN, END_HIDDEN)):
        del lines[first:last + 1]
    return "\n".join(lines).rstrip()


def hidden_lines(source: str) -> set[int]:
    """1-based line numbers inside hidden regions (as `ast` numbers them)."""
    return {i + 1 for a, b in _regions(source, BEGIN_HIDDEN, END_HIDDEN) for i in range(a, b + 1)}


def _is_check_call(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "check"
            and node.func.attr in KINDS)


def count_checks(source: str) -> int:
    """How many `check.<kind>(...)` calls a test cell makes (0 when it is not valid Python)."""
    try:
        return sum(_is_check_call(n) for n in ast.walk(ast.parse(source)))
    except SyntaxError:
        return 0


def hidden_checks_without_expected(source: str) -> list[str]:
    """Names of the hidden `check.*` calls that give no expected value (they only check a type under nbgrader)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    hidden = hidden_lines(source)
    return [ast.unparse(n.args[0]) if n.args else "?" for n in ast.walk(tree)
            if _is_check_call(n) and n.lineno in hidden
            and len(n.args) < 3 and not any(k.arg == "expected" for k in n.keywords)]


class _ToRecorder(ast.NodeTransformer):
    def __init__(self, recorder: str, grade_id: str, hidden: set[int]):
        self.recorder, self.grade_id, self.hidden = recorder, grade_id, hidden

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if not _is_check_call(node):
            return node
        kind = node.func.attr  # type: ignore[attr-defined]
        head = [ast.Constant(self.grade_id), ast.Constant(node.lineno in self.hidden), ast.Constant(kind)]
        func = ast.Attribute(ast.Name(self.recorder, ast.Load()), "observe", ast.Load())
        return ast.copy_location(ast.Call(func, head + node.args, node.keywords), node)


def _guarded(body: list[ast.stmt], recorder: str, grade_id: str, hidden: bool) -> ast.stmt:
    """`try: body / except: recorder.fail(grade_id, hidden); raise` (bare except: no name lookups)."""
    fail = ast.parse(f"{recorder}.fail({grade_id!r}, {hidden!r})").body[0]
    handler = ast.ExceptHandler(type=None, name=None, body=[fail, ast.Raise()])
    return ast.Try(body=body, handlers=[handler], orelse=[], finalbody=[])


def rewrite_test_cell(source: str, grade_id: str, recorder: str) -> str:
    """The grader's version of a solution test cell: checks observe, failure and completion recorded."""
    hidden = hidden_lines(source)
    tree = _ToRecorder(recorder, grade_id, hidden).visit(ast.parse(source))
    segments: list[tuple[bool, list[ast.stmt]]] = []
    for stmt in tree.body:
        is_hidden = stmt.lineno in hidden
        if segments and segments[-1][0] == is_hidden:
            segments[-1][1].append(stmt)
        else:
            segments.append((is_hidden, [stmt]))
    body = [_guarded(stmts, recorder, grade_id, h) for h, stmts in segments]
    body += ast.parse(f"{recorder}.done({grade_id!r})").body
    return ast.unparse(ast.fix_missing_locations(ast.Module(body=body, type_ignores=[])))
