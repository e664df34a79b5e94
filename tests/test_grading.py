"""course_lib.grading: release, the check API, and `course grade` against tampering.

One small solution notebook (pure Python + numpy) and a class of fake submissions, graded
once per module with `--jobs 2`; each test then reads its student's rows.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from course_lib.cli import main as course
from course_lib.grading import check
from course_lib.grading.markers import rewrite_test_cell, strip_solution
from course_lib.grading.release import release_notebook

REPO = Path(__file__).resolve().parents[1]
POINTS = {"q1_count": 2, "q2_mean": 3, "q3_choice": 1, "q4_unit": 4}
TOTAL = sum(POINTS.values())

# (cell id, source, grade_id or None)
SOLUTION = [
    ("c0", "import math\nimport numpy as np\nfrom course_lib.grading import check", None),
    ("c1", 'def count_words(text):\n    """Words separated by whitespace."""\n'
           "    ### BEGIN SOLUTION\n    return len(text.split())\n    ### END SOLUTION", None),
    ("t1", 'check.equal("two", count_words("a b"), 2, hint="split on whitespace")\n'
           'assert count_words("a  b") == 2, "two spaces are still one gap"\n'
           '### BEGIN HIDDEN TESTS\ncheck.equal("empty", count_words(""), 0)\n### END HIDDEN TESTS', "q1_count"),
    ("c2", "def mean(xs):\n    ### BEGIN SOLUTION\n    return sum(xs) / len(xs)\n    ### END SOLUTION", None),
    ("t2", 'check.close("mean", mean([1, 2]), 1.5)\nassert math.isclose(mean([2]), 2.0)', "q2_mean"),
    ("c3", '### BEGIN SOLUTION\nanswer_q3 = "C"\n### END SOLUTION', None),
    ("t3", 'check.equal("q3", answer_q3, "C")', "q3_choice"),
    ("c4", "def unit(v):\n    ### BEGIN SOLUTION\n    return v / np.linalg.norm(v)\n    ### END SOLUTION", None),
    ("t4", 'u = unit(np.array([3.0, 4.0]))\ncheck.shape("shape", u, (2,))\n'
           'check.close("unit", u, np.array([0.6, 0.8]), rel_tol=1e-9)\n'
           '### BEGIN HIDDEN TESTS\ncheck.close("unit_3d", unit(np.array([2.0, 0.0, 0.0])))\n'
           '### END HIDDEN TESTS', "q4_unit"),
]


def solution_nb() -> nbformat.NotebookNode:
    cells = [new_markdown_cell("# Exercises: counting")]
    cells[0].id = "m0"
    for cid, src, gid in SOLUTION:
        meta = {"course": {"grade_id": gid, "points": POINTS[gid]}} if gid else {}
        cell = new_code_cell(src, metadata=meta)
        cell.id = cid
        cells.append(cell)
    return new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                              "language": "python"}})


def submission(answers: dict[str, str], drop: tuple[str, ...] = (), extra: list[str] = (),
               tests: dict[str, str] | None = None) -> nbformat.NotebookNode:
    """The released exercise with answer cells (by id) replaced, cells dropped, cells added."""
    nb = release_notebook(solution_nb(), "01_count")
    cells = []
    for cell in nb.cells:
        if cell.id in drop:
            continue
        if cell.id in answers:
            cell.source = answers[cell.id]
        if tests and cell.id in tests:
            cell.source = tests[cell.id]
        cells.append(cell)
    for i, src in enumerate(extra):
        cell = new_code_cell(src)
        cell.id = f"x{i}"
        cells.insert(2, cell)  # right after the imports, before any answer
    nb.cells = cells
    return nb


RIGHT = {"c1": "def count_words(text):\n    return len(text.split())", "c2": "def mean(xs):\n    return sum(xs) / len(xs)",
         "c3": 'answer_q3 = "C"', "c4": "def unit(v):\n    return v / np.linalg.norm(v)"}
WRONG = {"c1": "def count_words(text):\n    return 7", "c2": "def mean(xs):\n    return 0.0",
         "c3": 'answer_q3 = "A"', "c4": "def unit(v):\n    return v"}
ALWAYS = """
class Yes(float):
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    __lt__ = __le__ = __gt__ = __ge__ = __eq__
    def __float__(self): return 0.0
    def __hash__(self): return 0
"""
TAMPER = {
    "deleted_tests": (WRONG, ("t1",), [], {"t2": "", "t3": "pass", "t4": "check.close = print"}),
    "sys_exit": ({**WRONG, "c1": "import sys\ndef count_words(text):\n    sys.exit(0)"}, (), ["raise SystemExit"], None),
    "os_exit": (WRONG, (), ["import os\nos._exit(0)"], None),
    "kill_kernel": (RIGHT, (), [], {"c2": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"}),
    "infinite_loop": ({**WRONG, "c1": "def count_words(text):\n    while True:\n        pass",
                       "c2": "import time\nwhile True:\n    try:\n        time.sleep(0.1)\n    except KeyboardInterrupt:\n        pass"},
                      (), [], None),
    "print_flood": (WRONG, (), ["print('x' * 20_000_000)\nfor i in range(3): print('0' * 40 + ' {\"event\": \"done\", \"gid\": \"q1_count\"}')"], None),
    "memory_blowup": (WRONG, (), ["c = []\nwhile True:\n    c.append(bytes(5 * 10**8))", "x = bytearray(10**11)"], None),
    "always_equal": ({"c1": ALWAYS + "def count_words(text):\n    return Yes()", "c2": "def mean(xs):\n    return Yes()",
                      "c3": "answer_q3 = Yes()", "c4": "def unit(v):\n    return Yes()"}, (), [], None),
    "lying_subclasses": ({"c1": "class I(int):\n    def __eq__(s, o): return True\ndef count_words(text):\n    return I(9)",
                          "c2": "class F(float):\n    def __eq__(s, o): return True\n    def __sub__(s, o): return 0.0\n"
                                "    __rsub__ = __sub__\ndef mean(xs):\n    return F(9.0)",
                          "c3": "class S(str):\n    def __eq__(s, o): return True\nanswer_q3 = S('A')",
                          "c4": "class A(np.ndarray):\n    def __eq__(s, o): return True\n"
                                "def unit(v):\n    return np.zeros(2).view(A)"}, (), [], None),
    "patched_builtins": (WRONG, (), ["import builtins, math\nbuiltins.isinstance = lambda *a: True\nbuiltins.len = lambda x: 2\n"
                                     "builtins.AssertionError = type('Nope', (Exception,), {})\nbuiltins.type = lambda *a: float\n"
                                     "math.isclose = lambda *a, **k: True"], None),
    "patched_check": (WRONG, (), ["import course_lib.grading.check as C, course_lib.grading.verdict as V, course_lib.grading.observe as O\n"
                                  "real = C.equal\nC.equal = lambda n, v, e=None, **k: real(n, e, e)\n"
                                  "C.close = C.shape = lambda *a, **k: None\nV.compare = lambda *a, **k: None\n"
                                  "O.make_encoder = lambda *a, **k: (lambda v: ['int', 2])\ncheck = C"], None),
    "patched_libs": (WRONG, (), ["import torch\ntorch.allclose = lambda *a, **k: True\nnp.allclose = np.isclose = lambda *a, **k: True\n"
                                 "np.linalg.norm = lambda v: 1.0\nnp.array_equal = lambda *a, **k: True"], None),
    "swallow_errors": (WRONG, (), ["get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)\n"
                                   "import sys\nsys.excepthook = lambda *a: None"], None),
}
HONEST = {
    "solution": (RIGHT, (), [], None),
    "exercise": ({}, (), [], None),
    # right q1 q3, integer division in q2, q4 left as the stub: 2 + 1
    "partial_a": ({"c1": RIGHT["c1"], "c2": "def mean(xs):\n    return sum(xs) // len(xs)", "c3": RIGHT["c3"]}, (), [], None),
    # q1 passes the visible check but not the hidden one; q2 and q4 right: 3 + 4
    "partial_b": ({**RIGHT, "c1": "def count_words(text):\n    return len(text.split()) or 1",
                   "c3": 'answer_q3 = "B"'}, (), [], None),
    # q2's answer cell deleted: q1, q3, q4 still count: 2 + 1 + 4
    "missing_answer": (RIGHT, ("c2",), [], None),
}
EXPECTED_TOTAL = {"solution": TOTAL, "exercise": 0, "partial_a": 3, "partial_b": 7, "missing_answer": 7,
                  "kill_kernel": 2, **{k: 0 for k in TAMPER if k != "kill_kernel"}}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Grade the whole class once through `course grade --json`; returns (rows by student, report, paths)."""
    root = tmp_path_factory.mktemp("class")
    (root / "solutions").mkdir()
    nbformat.write(solution_nb(), root / "solutions" / "01_count.ipynb")
    for student, (answers, drop, extra, tests) in {**HONEST, **TAMPER}.items():
        (root / "subs" / student).mkdir(parents=True)
        nbformat.write(submission(answers, drop, extra, tests), root / "subs" / student / "01_count.ipynb")
    (root / "subs" / "unreadable").mkdir()
    (root / "subs" / "unreadable" / "01_count.ipynb").write_text("{ this is not a notebook")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = course(["grade", str(root / "subs"), "--out", str(root / "gradebook.csv"), "--feedback",
                     str(root / "feedback"), "--solutions", str(root / "solutions"), "--jobs", "2",
                     "--timeout", "3", "--memory-mb", "4096", "--json"])
    assert rc == 0
    from course_lib.grading.report import read_gradebook
    rows: dict[str, dict] = {}
    for r in read_gradebook(root / "gradebook.csv"):
        rows.setdefault(r.student, {})[r.grade_id] = r
    return rows, json.loads(out.getvalue()), root


def total(rows, student):
    return sum(r.points for r in rows[student].values())


@pytest.mark.parametrize("student", list(HONEST))
def test_honest_submissions_get_exactly_their_points(graded, student):
    rows, report, _ = graded
    assert total(rows, student) == EXPECTED_TOTAL[student], rows[student]
    assert report["students"][student]["max_points"] == TOTAL


@pytest.mark.parametrize("student", [s for s in TAMPER])
def test_tampering_earns_nothing(graded, student):
    rows, _, _ = graded
    assert total(rows, student) == EXPECTED_TOTAL[student], rows[student]
    assert set(rows[student]) == set(POINTS), "every test has its row, the batch went on"


def test_failure_reasons_and_messages(graded):
    rows, _, _ = graded
    assert rows["exercise"]["q1_count"].message.startswith("NotImplementedError")
    assert rows["partial_a"]["q2_mean"].message == "mean: expected float 1.5, got int 1 (rel_tol=1e-06)"
    assert rows["partial_b"]["q1_count"].message.startswith("hidden check 'empty' failed")
    assert rows["missing_answer"]["q2_mean"].status == "missing answer"
    assert {r.status for r in rows["os_exit"].values()} == {"kernel died"}
    assert rows["kill_kernel"]["q1_count"].status == "passed"
    assert rows["kill_kernel"]["q3_choice"].status == "kernel died"
    assert rows["infinite_loop"]["q1_count"].status == "timeout"
    assert rows["lying_subclasses"]["q1_count"].message.startswith("two: expected int 2, got a I")
    assert rows["unreadable"]["*"].status == "unreadable" and rows["unreadable"]["*"].max_points == TOTAL


def test_summary_and_feedback_hide_hidden_tests(graded):
    _, _, root = graded
    summary = (root / "gradebook_summary.csv").read_text()
    assert f"solution,{TOTAL},{TOTAL},100.0,1," in summary
    assert "os._exit" in summary  # flagged for review
    feedback = (root / "feedback" / "partial_b.md").read_text()
    assert "7 / 10" in feedback and "hidden check 'empty'" in feedback
    for student in HONEST:
        text = (root / "feedback" / f"{student}.md").read_text()
        assert "count_words(\"\")" not in text and "unit_3d\"" not in text and "[2.0, 0.0, 0.0]" not in text


def test_resume_grades_only_what_is_missing(graded, tmp_path):
    rows, _, root = graded
    book = tmp_path / "gradebook.csv"
    kept = [line for line in (root / "gradebook.csv").read_text().splitlines()
            if not line.startswith("partial_a,")]
    book.write_text("\n".join(kept) + "\n")
    (tmp_path / ".grade-cache").mkdir()
    for f in (root / ".grade-cache").iterdir():  # expectations cached: the solution is not run again
        shutil.copy(f, tmp_path / ".grade-cache" / f.name)
    rc = course(["grade", str(root / "subs"), "--out", str(book), "--solutions", str(root / "solutions"),
                 "--timeout", "5", "--resume"])
    assert rc == 0
    from course_lib.grading.report import read_gradebook
    again = read_gradebook(book)
    assert len(again) == sum(len(v) for v in rows.values())
    assert sum(r.points for r in again if r.student == "partial_a") == EXPECTED_TOTAL["partial_a"]


# ---- no kernel below ----

def test_release_stubs_hides_and_tags():
    ex = release_notebook(solution_nb(), "01_count")
    src = {c.id: c for c in ex.cells}
    assert src["c1"].source == 'def count_words(text):\n    """Words separated by whitespace."""\n' \
                               "    # YOUR CODE HERE\n    raise NotImplementedError()"
    assert src["c3"].source == "# YOUR CODE HERE\nraise NotImplementedError()"
    assert "HIDDEN" not in src["t1"].source and 'count_words("")' not in src["t1"].source
    assert "unit_3d" not in src["t4"].source
    for cid in ("c1", "t1", "t4"):
        assert "raises-exception" in src[cid].metadata["tags"]
    assert "tags" not in src["c0"].metadata
    assert src["t4"].metadata["nbgrader"] == {"grade": True, "solution": False, "locked": True,
                                              "grade_id": "q4_unit", "points": 4, "schema_version": 3}
    assert src["c2"].metadata["nbgrader"]["solution"] is True
    assert nbformat.writes(ex) == nbformat.writes(release_notebook(solution_nb(), "01_count"))


def test_strip_solution_keeps_indentation():
    src = "class A:\n    def f(self):\n        x = 1\n        ### BEGIN SOLUTION\n        return x\n        ### END SOLUTION\n"
    assert strip_solution(src) == ("class A:\n    def f(self):\n        x = 1\n"
                                   "        # YOUR CODE HERE\n        raise NotImplementedError()")


def test_rewrite_sends_checks_to_the_recorder():
    out = rewrite_test_cell('check.equal("a", f(1), 2)\n### BEGIN HIDDEN TESTS\ncheck.close("b", f(2))\n'
                            "### END HIDDEN TESTS", "q1", "_course_x")
    assert "check." not in out
    assert "_course_x.observe('q1', False, 'equal', 'a', f(1), 2)" in out
    assert "_course_x.observe('q1', True, 'close', 'b', f(2))" in out
    assert "_course_x.fail('q1', True)" in out and out.rstrip().endswith("_course_x.done('q1')")


def test_release_check_cli(tmp_path, capsys):
    sol, ex = tmp_path / "solutions", tmp_path / "exercises"
    sol.mkdir()
    nbformat.write(solution_nb(), sol / "01_count.ipynb")
    args = ["--solutions", str(sol), "--exercises", str(ex)]
    assert course(["release", "--check", *args]) == 1
    assert course(["release", *args]) == 0
    assert course(["release", "--check", *args]) == 0
    nb = nbformat.read(ex / "01_count.ipynb", as_version=4)
    nb.cells[2].source += "\n# edited by hand"
    nbformat.write(nb, ex / "01_count.ipynb")
    capsys.readouterr()
    assert course(["release", "--check", *args]) == 1
    assert "01_count.ipynb" in capsys.readouterr().err


@pytest.mark.skipif(not list((REPO / "solutions").glob("*.ipynb")), reason="no solutions/ notebooks yet")
def test_repo_exercises_are_released(tmp_path):
    args = ["--solutions", str(REPO / "solutions"), "--exercises", str(REPO / "exercises")]
    assert course(["release", "--check", *args]) == 0, "run `course release` and commit exercises/"
    copy = tmp_path / "exercises"
    shutil.copytree(REPO / "exercises", copy)
    first = sorted(copy.glob("*.ipynb"))[0]
    first.write_text(first.read_text().replace('"cells": [', '"cells": [ ', 1) + " ")
    assert course(["release", "--check", "--solutions", str(REPO / "solutions"), "--exercises", str(copy)]) == 1


def test_check_api_teaches_in_the_notebook():
    import numpy as np
    check.equal("n", 3, 3)
    check.close("x", 0.1 + 0.2, 0.3)
    check.shape("a", np.zeros((2, 3)), (2, 3))
    check.close("hidden", 1.0)
    with pytest.raises(AssertionError, match=r"n: expected int 3, got float 3.0 .* — count words"):
        check.equal("n", 3.0, 3, hint="count words")
    with pytest.raises(AssertionError, match="got a Lie"):
        check.close("x", type("Lie", (float,), {"__eq__": lambda s, o: True})(1.0), 0.3)
    with pytest.raises(AssertionError, match=r"expected tuple \(2, 3\), got tuple \(2, 4\)"):
        check.shape("a", np.zeros((2, 4)), (2, 3))
