"""Grading one submission: build the graded notebook, run it, score each test cell.

The graded notebook is the submission's own cells, minus anything that looks like a test
cell, with each of the *solution's* test cells (rewritten by `markers.rewrite_test_cell`)
inserted after the cell it follows in the solution. Expectations come from grading the
solution notebook itself the same way, cached per solution hash.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import nbformat

from course_lib.grading.markers import BEGIN_SOLUTION, is_answer_cell, rewrite_test_cell, test_spec
from course_lib.grading.runner import RunConfig, RunResult, new_nonce, recorder_name, run_notebook
from course_lib.grading.verdict import compare, show

__all__ = ["Row", "build_graded", "score", "expectations", "grade_submission", "GRADER_VERSION"]

GRADER_VERSION = "1"  # part of the expectations cache key: bump when observations change meaning
_SUSPICIOUS = re.compile(r"_course_|settrace|setprofile|gc\.get_|__closure__|cell_contents|__builtins__|"
                         r"import builtins|os\._exit|os\.kill|ctypes|set_custom_exc|setrlimit|"
                         r"sys\.modules\[|importlib\.reload|sys\.exit|\bexit\(\)|__code__")


@dataclass
class Row:
    """One gradebook line: one test of one notebook of one student."""
    student: str
    notebook: str
    grade_id: str
    points: int
    max_points: int
    status: str    # passed | failed | timeout | kernel died | missing answer | unreadable | error
    message: str


def _anchor_line(source: str) -> str:
    """The first line outside a solution region (`def f(x):`), to find a cell whose id changed."""
    for line in source.splitlines():
        if line.strip() == BEGIN_SOLUTION:
            return ""
        if line.strip() and not line.strip().startswith("#"):
            return line.strip()
    return ""


def build_graded(solution: Any, submission: Any, nonce: str) -> tuple[Any, dict[str, int], dict[str, str]]:
    """(graded notebook, grade_id -> its cell index, grade_id -> why it cannot run)."""
    sol_cells = solution.cells
    test_ids = {c.get("id") for c in sol_cells if test_spec(c)}
    sub_cells = [c for c in submission.cells
                 if not test_spec(c) and c.get("id") not in test_ids
                 and not c.get("metadata", {}).get("nbgrader", {}).get("grade")]
    by_id = {c.get("id"): i for i, c in enumerate(sub_cells) if c.get("id")}
    matched: dict[int, int] = {}  # solution cell index -> submission cell index
    for j, cell in enumerate(sol_cells):
        if not test_spec(cell) and cell.get("id") in by_id:
            matched[j] = by_id[cell.get("id")]
    taken = set(matched.values())
    for j, cell in enumerate(sol_cells):  # ids lost (notebook copied, cells re-created): match a signature
        line = _anchor_line(cell.source) if is_answer_cell(cell) and j not in matched else ""
        for i, sub in enumerate(sub_cells):
            if line and i not in taken and sub.cell_type == cell.cell_type and line in sub.source:
                matched[j] = i
                taken.add(i)
                break
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
        k, anchor = j - 1, -1
        while k >= 0:
            if k in anchor_of:
                anchor = anchor_of[k]
                break
            if k in matched:
                anchor = matched[k]
                break
            k -= 1
        anchor_of[j] = anchor
        after.setdefault(anchor, []).append(j)
    graded = nbformat.v4.new_notebook(metadata=dict(solution.metadata))
    index_of: dict[str, int] = {}

    def place(anchor: int) -> None:
        for j in after.get(anchor, []):
            spec = test_spec(sol_cells[j])
            src = rewrite_test_cell(sol_cells[j].source, spec.grade_id, recorder_name(nonce))
            index_of[spec.grade_id] = len(graded.cells)
            graded.cells.append(nbformat.v4.new_code_cell(src))

    place(-1)
    for i, cell in enumerate(sub_cells):
        new = nbformat.from_dict(dict(cell))
        if new.cell_type == "code":
            new.outputs, new.execution_count = [], None
        graded.cells.append(new)
        place(i)
    return graded, index_of, missing


def _observations(events: list[dict], gid: str) -> list[dict]:
    return [e for e in events if e.get("event") == "observe" and e.get("gid") == gid]


def score(tests: dict[str, dict], result: RunResult, index_of: dict[str, int], missing: dict[str, str],
          expected: dict[str, list[dict]]) -> list[tuple[str, int, int, str, str]]:
    """(grade_id, points, max_points, status, message) per test, from events and expectations."""
    rows = []
    for gid, spec in tests.items():
        pts = spec["points"]
        events = [e for e in result.events if e.get("gid") == gid]
        fails = [e for e in events if e.get("event") == "fail"]
        done = any(e.get("event") == "done" for e in events)
        index = index_of.get(gid)
        if gid in missing:
            rows.append((gid, 0, pts, "missing answer", missing[gid]))
        elif index is not None and index in result.timed_out:
            rows.append((gid, 0, pts, "timeout", "the test ran out of time (infinite loop?)"))
        elif fails:
            f = fails[0]
            if f.get("hidden") and f.get("ename") == "AssertionError":
                msg = "a hidden test failed"
            else:
                msg = f"{f.get('ename')}: {f.get('message')}".rstrip(": ")
                msg = ("hidden test: " + msg) if f.get("hidden") else msg
            rows.append((gid, 0, pts, "failed", msg))
        elif done:
            msg = _compare_all(expected.get(gid, []), _observations(events, gid))
            rows.append((gid, pts, pts, "passed", "") if msg is None else (gid, 0, pts, "failed", msg))
        elif result.stopped and (result.stopped_at is None or index is None or result.stopped_at <= index):
            status = result.stopped if result.stopped in ("timeout", "kernel died") else "error"
            why = {"timeout": "stopped: the notebook ran out of time",
                   "kernel died": "stopped: the kernel died (os._exit, a crash or out of memory)"}
            rows.append((gid, 0, pts, status, why.get(status, result.stopped)))
        else:
            rows.append((gid, 0, pts, "error", "the test did not complete"))
    return rows


def _compare_all(want: list[dict], got: list[dict]) -> str | None:
    """None when the student's observations match the solution's one for one, else the first difference."""
    for i, w in enumerate(want):
        name, hidden = w.get("name", "?"), w.get("hidden")
        if i >= len(got):
            return f"check '{name}' did not run"
        msg = compare(w["kind"], got[i]["value"], w["value"], w.get("params"))
        if msg is not None:
            if hidden:
                return f"hidden check '{name}' failed (got {show(got[i]['value'])})"
            return f"{name}: {msg}" + (f" — {w['hint']}" if w.get("hint") else "")
    if len(got) > len(want):
        return f"{len(got) - len(want)} more check(s) than the solution makes"
    return None


def _modules_for(solution: Any) -> tuple[str, ...]:
    text = "\n".join(c.source for c in solution.cells if c.cell_type == "code")
    return tuple(m for m in ("numpy", "torch") if re.search(rf"\b{m}\b", text))


def _tests_of(solution: Any) -> dict[str, dict]:
    return {s.grade_id: {"points": s.points} for s in map(test_spec, solution.cells) if s}


def expectations(solution_path: Path, run: RunConfig, cache_dir: Path | None = None) -> dict:
    """Run the solution as a submission of itself; its observations are what students must match."""
    data = solution_path.read_bytes()
    key = hashlib.sha256(data + GRADER_VERSION.encode()).hexdigest()[:16]
    cache = cache_dir / f"{solution_path.stem}-{key}.json" if cache_dir else None
    if cache and cache.exists():
        return json.loads(cache.read_text())
    solution = nbformat.reads(data.decode("utf-8"), as_version=4)
    tests, modules = _tests_of(solution), _modules_for(solution)
    nonce = new_nonce()
    graded, index_of, missing = build_graded(solution, solution, nonce)
    result = run_notebook(graded, nonce, run, modules)
    expected = {gid: _observations(result.events, gid) for gid in tests}
    for gid, obs in expected.items():  # the solution must pass its own checks, `expected=` included
        for o in obs:
            if o.get("expected") is not None and compare(o["kind"], o["value"], o["expected"], o["params"]):
                raise ValueError(f"{solution_path}: the solution fails its own check {gid}/{o['name']}: "
                                 + compare(o["kind"], o["value"], o["expected"], o["params"]))
    for gid, _, _, status, msg in score(tests, result, index_of, missing, expected):
        if status != "passed":
            raise ValueError(f"{solution_path}: the solution does not pass its own test {gid}: {status}: {msg}")
    out = {"tests": tests, "modules": list(modules), "expected": expected}
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(out))
    return out


def grade_submission(student: str, path: Path, solution_path: Path, expect: dict, run: RunConfig) -> list[Row]:
    """Every test row for one submitted notebook; never raises (a failure becomes a row)."""
    name = path.stem
    total = sum(t["points"] for t in expect["tests"].values())
    try:
        submission = nbformat.read(path, as_version=4)
        nbformat.validate(submission)
        solution = nbformat.read(solution_path, as_version=4)
    except Exception as exc:
        return [Row(student, name, "*", 0, total, "unreadable", f"{type(exc).__name__}: {exc}"[:300])]
    try:
        nonce = new_nonce()
        graded, index_of, missing = build_graded(solution, submission, nonce)
        result = run_notebook(graded, nonce, run, tuple(expect["modules"]))
        rows = score(expect["tests"], result, index_of, missing, expect["expected"])
    except Exception as exc:
        return [Row(student, name, "*", 0, total, "error", f"grader error: {type(exc).__name__}: {exc}"[:300])]
    return [Row(student, name, gid, pts, mx, status, msg) for gid, pts, mx, status, msg in rows]


def suspicious(path: Path) -> list[str]:
    """Calls in a submission that tamper-resistance makes useless but a human may want to see."""
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception:
        return []
    found = {m.group(0) for c in nb.cells if c.cell_type == "code" and not test_spec(c)
             for m in _SUSPICIOUS.finditer(c.source)}
    return sorted(found)


def row_dict(row: Row) -> dict:
    """A Row as a dict in CSV column order."""
    return asdict(row)
