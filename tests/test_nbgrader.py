"""Real nbgrader on the course's notebooks: solutions/ are nbgrader sources, exercises/ are nbgrader's release.

One nbgrader course folder for the module: every solution notebook under source/, one
`nbgrader generate_assignment`, then `nbgrader autograde` of lesson 03 for three students built
from the committed exercise notebook — all answers right, handed in blank, and right on the
visible tests only — whose scores must equal `course grade`'s. Hidden tests carry their expected
values (EXERCISES.md), so nbgrader's plain kernel fails the third student on them too.
"""

from __future__ import annotations

import copy
import csv
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from course_lib.grading import markers  # its `test_spec` must not be collected as a test here
from course_lib.grading.markers import hidden_checks_without_expected, is_answer_cell

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # nbgrader calls `alembic` by name: the venv's bin goes on PATH
ASSIGNMENT = "course"
NOTEBOOK = "03_lora_math"

# Right on every visible test, wrong on the hidden ones (keyed by a line of the answer cell they replace): square matrices only in q1 (d == k), and
# a scaling that happens to be √16 = 4 in q2; q5's numbers typed in rather than computed.
VISIBLE_ONLY = {
    "def count_lora_params(": "def count_lora_params(d: int, k: int, r: int) -> int:\n    return 2 * r * d",
    "def lora_scaling(": "def lora_scaling(alpha, r, use_rslora=False):\n    return alpha / (4 if use_rslora else r)",
    "all_linear_r8 =": "all_linear_r8 = 81920\nattention_rank_same_budget = 20",
}
EXPECTED = {"correct": 15, "blank": 0, "visible_only": 11}  # visible_only: q3 + q4 + q5 + q6 = 3 + 3 + 2 + 3


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(map(str, args))} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def submission(exercise: nbformat.NotebookNode, answers: dict[str, str]) -> nbformat.NotebookNode:
    """The exercise with the answer cells named in `answers` (cell id -> source) filled in."""
    nb = copy.deepcopy(exercise)
    for cell in nb.cells:
        if cell.id in answers:
            assert cell.metadata["nbgrader"]["solution"], cell.id
            cell.source = answers[cell.id]
    return nb


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """An nbgrader course folder whose assignment holds every solution notebook, generated once."""
    root = tmp_path_factory.mktemp("nbgrader")
    shipped = (REPO / "nbgrader_config.py").read_text()  # the course's own config, the folder moved here
    (root / "nbgrader_config.py").write_text(
        shipped + f"c.CourseDirectory.root = {str(root)!r}\n"
        f"c.CourseDirectory.db_url = 'sqlite:///{root / 'gradebook.db'}'\n")
    source = root / "source" / ASSIGNMENT
    source.mkdir(parents=True)
    for nb in sorted((REPO / "solutions").glob("*.ipynb")):
        (source / nb.name).write_bytes(nb.read_bytes())
    run([BIN / "nbgrader", "generate_assignment", ASSIGNMENT, "--create", "--force"], root)
    return root


def _comparable(cell) -> tuple:
    meta = copy.deepcopy(dict(cell.metadata))
    for key in ("checksum", "cell_type"):  # nbgrader's bookkeeping, recomputed at autograde
        meta.get("nbgrader", {}).pop(key, None)
    tags = [t for t in meta.pop("tags", []) if t != "raises-exception"]  # ours, for pytest --nbval-lax
    return cell.cell_type, cell.source.rstrip(), meta, tags, cell.get("outputs", [])


@pytest.mark.parametrize("name", sorted(p.stem for p in (REPO / "solutions").glob("*.ipynb")))
def test_exercise_is_what_nbgrader_generates(course, name):
    theirs = nbformat.read(course / "release" / ASSIGNMENT / f"{name}.ipynb", as_version=4)
    ours = nbformat.read(REPO / "exercises" / f"{name}.ipynb", as_version=4)
    assert [c.id for c in ours.cells] == [c.id for c in theirs.cells]
    for a, b in zip(ours.cells, theirs.cells):
        assert _comparable(a) == _comparable(b), f"{name} cell {a.id} differs from nbgrader's release"
    assert ours.metadata.kernelspec.name == "fine-tuning-course"


def _course_grade(subs: Path, out: Path) -> dict[str, int]:
    run([BIN / "course", "grade", subs, "--solutions", REPO / "solutions", "--out", out, "--jobs", "2"], REPO)
    totals: Counter = Counter()
    with out.open(newline="") as f:
        for row in csv.DictReader(f):
            totals[row["student"]] += int(float(row["points"]))
    return dict(totals)


def test_nbgrader_and_course_grade_agree(course, tmp_path):
    solution = nbformat.read(REPO / "solutions" / f"{NOTEBOOK}.ipynb", as_version=4)
    exercise = nbformat.read(REPO / "exercises" / f"{NOTEBOOK}.ipynb", as_version=4)
    right = {c.id: c.source for c in solution.cells if is_answer_cell(c)}  # exercise cells share the ids
    wrong = {cid: next(src for key, src in VISIBLE_ONLY.items() if key in right[cid])
             for cid in right if any(key in right[cid] for key in VISIBLE_ONLY)}
    assert len(wrong) == len(VISIBLE_ONLY)
    students = {"correct": submission(exercise, right), "blank": exercise,
                "visible_only": submission(exercise, {**right, **wrong})}
    for student, nb in students.items():
        for folder in (course / "submitted" / student / ASSIGNMENT, tmp_path / "subs" / student):
            folder.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, folder / f"{NOTEBOOK}.ipynb")

    done = run([BIN / "nbgrader", "autograde", ASSIGNMENT, "--create", "--force"], course)
    # nbgrader warns "Attribute 'checksum' for cell X has changed!" for a test cell whose released copy lacks
    # its hidden tests (its own release does the same) and puts the instructor's cell back: only those cells
    hidden = {markers.test_spec(c).grade_id for c in solution.cells
              if markers.test_spec(c) and markers.BEGIN_HIDDEN in c.source}
    warned = set(re.findall(r"Attribute 'checksum' for cell (\S+) has changed", done.stdout + done.stderr))
    assert warned and warned <= hidden, (warned, hidden)
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        nbgrader_scores = {s: gb.find_submission_notebook(NOTEBOOK, ASSIGNMENT, s).score for s in students}

    assert nbgrader_scores == EXPECTED
    assert _course_grade(tmp_path / "subs", tmp_path / "gradebook.csv") == EXPECTED


@pytest.mark.parametrize("name", sorted(p.stem for p in (REPO / "solutions").glob("*.ipynb")))
def test_hidden_checks_state_their_expected_values(name):
    """Without one, a hidden check only tests the value's type in nbgrader's plain kernel (EXERCISES.md)."""
    nb = nbformat.read(REPO / "solutions" / f"{name}.ipynb", as_version=4)
    missing = {markers.test_spec(c).grade_id: hidden_checks_without_expected(c.source) for c in nb.cells
               if markers.test_spec(c)}
    assert not any(missing.values()), {k: v for k, v in missing.items() if v}


def test_hidden_checks_without_expected_are_found():
    source = ('check.equal("seen", f(1), 2)\n### BEGIN HIDDEN TESTS\ncheck.close("a", f(2))\n'
              'check.close("b", f(3), expected=4.0)\ncheck.equal("c", f(4), 5)\n'
              'check.shape("d", t, hint="x")\n### END HIDDEN TESTS')
    assert hidden_checks_without_expected(source) == ["'a'", "'d'"]
