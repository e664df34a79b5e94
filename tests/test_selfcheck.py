"""`course check`: a student's self-check reports, per part, passing / not answered / failing with the visible message.

Before issue 26 the README's self-check (`pytest --nbval-lax exercises/…`) passed untouched notebooks and
failing submissions alike; these tests run exercise 08 (seconds, no training) as a student would hand it in.
"""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat
import pytest

from course_lib.cli import main
from course_lib.grading.messages import NOT_ANSWERED
from course_lib.grading.selfcheck import parts, run_notebook

REPO = Path(__file__).resolve().parents[1]
EXERCISE = REPO / "exercises" / "08_beyond_one_gpu.ipynb"
SOLUTION = REPO / "solutions" / "08_beyond_one_gpu.ipynb"
# Q3 with step 1 left in: allreduce_share 0.29 instead of 0.25 (the visible test's message names both)
WRONG_Q3 = '''def read_ddp_log(log: str) -> dict:
    import re
    steps = re.findall(r"step ([\\d.]+) s  all-reduce ([\\d.]+) s", log)
    return {"num_processes": 4, "global_batch": 8,
            "allreduce_share": sum(float(c) for _, c in steps) / sum(float(s) for s, _ in steps)}
'''


def _answer_cells(nb):
    return [c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("solution")]


def _submission(tmp_path: Path) -> Path:
    """Parts 1 and 4 from the solution, part 3 wrong, parts 2 and 5 untouched."""
    exercise, solution = nbformat.read(EXERCISE, as_version=4), nbformat.read(SOLUTION, as_version=4)
    nb = copy.deepcopy(exercise)
    answers, solved = _answer_cells(nb), _answer_cells(solution)
    assert len(answers) == len(solved) == 5
    answers[0].source = solved[0].source  # Q1
    answers[2].source = answers[2].source.split("def read_ddp_log")[0] + WRONG_Q3  # Q3: keep LOG, wrong answer
    answers[3].source = solved[3].source  # Q4
    nb.cells.append(nbformat.v4.new_code_cell("print(no_such_name)"))  # a typo outside a test cell
    path = tmp_path / EXERCISE.name
    nbformat.write(nb, path)
    return path


def _test_cells(nb):
    return {c.metadata["course"]["grade_id"]: c for c in nb.cells if "course" in c.metadata}


@pytest.mark.slow
def test_self_check_reports_each_part(tmp_path):
    nb = run_notebook(_submission(tmp_path))
    # what the notebook itself shows: ✓ per passing check, one line per failure, no course_lib frames
    cells = _test_cells(nb)
    shown = lambda gid: [o for o in cells[gid].outputs]  # noqa: E731
    assert "✓ stage0\n" in "".join(o.get("text", "") for o in shown("q1_zero_by_hand"))
    (q3_error,) = [o for o in shown("q3_ddp_log") if o.output_type == "error"]
    assert len(q3_error.traceback) == 1 and q3_error.traceback[0].startswith("✗ allreduce_share: expected float")
    (q2_error,) = [o for o in shown("q2_global_batch") if o.output_type == "error"]
    assert q2_error.traceback == [q2_error.traceback[0]] and q2_error.traceback[0].startswith(NOT_ANSWERED)
    assert q2_error.ename == "NotImplementedError"  # nbgrader and Validate still see an error
    typo = nb.cells[-1].outputs[0]
    assert typo.ename == "NameError" and len(typo.traceback) > 1  # elsewhere: IPython's own traceback
    found = parts(nb)
    assert [(p.label, p.status) for p in found] == [
        ("Part 1", "pass"), ("Part 2", "not answered"), ("Part 3", "fail"), ("Part 4", "pass"),
        ("Part 5", "not answered")]
    assert found[2].message.startswith("allreduce_share: expected float 0.25, got float 0.2")
    assert "step 1 left out" in found[2].message  # the visible test's hint
    assert found[1].message.startswith(NOT_ANSWERED) and "global_batch_size" in found[1].message
    assert found[4].message.startswith(NOT_ANSWERED) and "answer_q5" in found[4].message


@pytest.mark.slow
def test_course_check_command(tmp_path, capsys):
    assert main(["check", str(_submission(tmp_path))]) == 1
    out = capsys.readouterr().out
    assert "2 of 5 parts pass (6 of 12 points on the visible tests)" in out
    assert "✗ Part 3  allreduce_share: expected float 0.25" in out and "✓ Part 1  passes" in out
    assert main(["check", str(SOLUTION)]) == 0
    assert "5 of 5 parts pass (12 of 12 points" in capsys.readouterr().out


def test_course_check_refuses_what_is_not_a_notebook(tmp_path, capsys):
    assert main(["check", str(tmp_path / "nothing.ipynb")]) == 2
    assert "is not a notebook" in capsys.readouterr().err
