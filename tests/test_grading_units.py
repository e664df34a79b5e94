"""course_lib.grading without a kernel: cell matching, record tokens, messages, safe outputs, the sandbox's argv."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell

from course_lib.grading import sandbox
from course_lib.grading.assemble import build_graded, drop_hidden_expected
from course_lib.grading.batch import discover
from course_lib.grading.grade import MAX_STUDENT_TEXT, Row, Status, _failure, read_submission, refusal, score
from course_lib.grading.report import append_rows, neutralise, read_gradebook, restore, write_feedback
from course_lib.grading.runner import RunResult, recorder_name
from grading_class import POINTS, RIGHT, needs_sandbox, sandbox_required, solution_nb, submission  # noqa: F401

NONCE = "n0"


def _sources(graded) -> list[str]:
    return [c.source for c in graded.notebook.cells]


def _test_cell(graded, gid: str) -> str:
    return graded.notebook.cells[graded.index_of[gid]].source


def test_test_cells_follow_their_answers_by_cell_id():
    g = build_graded(solution_nb(), submission(RIGHT), NONCE)
    ids = [c.get("id") for c in g.notebook.cells]
    for answer, gid in (("c1", "q1_count"), ("c2", "q2_mean"), ("c3", "q3_choice"), ("c4", "q4_unit")):
        assert g.index_of[gid] == ids.index(answer) + 1, gid
    assert not g.missing and set(g.tokens) == set(POINTS)


def test_cells_without_ids_are_matched_by_their_first_line():
    sub = submission({**RIGHT, "c1": "import re\ndef count_words(text):\n    return len(text.split())"})
    for cell in sub.cells:
        cell.id = "new-" + cell.id  # copied into a fresh notebook: every id changed
    sub.cells.reverse()  # and reordered: only c1's first line (after `import re`) can match it
    g = build_graded(solution_nb(), sub, NONCE)
    assert "def count_words(text):" in g.notebook.cells[g.index_of["q1_count"] - 1].source


def test_a_deleted_answer_cell_is_reported_and_its_test_not_run():
    g = build_graded(solution_nb(), submission(RIGHT, drop=("c2",)), NONCE)
    assert set(g.missing) == {"q2_mean"} and "'c2'" in g.missing["q2_mean"]
    assert "q2_mean" not in g.index_of and "q1_count" in g.index_of


def test_student_test_cells_are_replaced_by_the_solutions():
    sub = submission(RIGHT, tests={"t1": "check.equal = print", "t3": "pass"})
    sub.cells.append(new_code_cell("assert True", metadata={"nbgrader": {"grade": True, "grade_id": "mine"}}))
    g = build_graded(solution_nb(), sub, NONCE)
    joined = "\n".join(_sources(g))
    assert "check.equal = print" not in joined and "assert True" not in joined
    assert sum(recorder_name(NONCE) + ".done(" in s for s in _sources(g)) == len(POINTS)


def test_each_test_records_under_its_own_one_time_token():
    a, b = build_graded(solution_nb(), submission(RIGHT), NONCE), build_graded(solution_nb(), submission(RIGHT), NONCE)
    assert len(set(a.tokens.values())) == len(POINTS) and a.tokens != b.tokens
    assert f"'{a.record_id('q1_count')}'" in _test_cell(a, "q1_count")
    assert a.tokens["q2_mean"] not in _test_cell(a, "q1_count")


def test_hidden_expected_values_never_reach_a_students_kernel():
    student = build_graded(solution_nb(), submission(RIGHT), NONCE)
    own = build_graded(solution_nb(), solution_nb(), NONCE, hidden_expected=True)
    assert "count_words(''))" in _test_cell(student, "q1_count")            # observed, expected dropped
    assert "count_words(''), 0)" in _test_cell(own, "q1_count")             # the solution's run keeps it
    assert "'two', count_words('a b'), 2" in _test_cell(student, "q1_count")  # visible ones stay
    src = drop_hidden_expected("r.observe('g', True, 'close', 'x', f(1), 2.0, rel_tol=0.1, expected=3)", "r")
    assert src == "r.observe('g', True, 'close', 'x', f(1), rel_tol=0.1)"


def _result(graded, *events: tuple[str, str, int, dict]) -> RunResult:
    """Records (gid as written, event, cell it was written in, extra fields)."""
    return RunResult(events=[{"event": ev, "gid": gid, "cell": cell, **extra} for gid, ev, cell, extra in events])


def test_only_records_with_the_right_token_from_the_right_cell_count():
    g = build_graded(solution_nb(), submission(RIGHT), NONCE)
    tests = {"q3_choice": {"points": 1}}
    expected = {"q3_choice": [{"kind": "equal", "name": "q3", "value": ["str", "C"], "params": {}}]}
    good = ("observe", {"kind": "equal", "name": "q3", "value": ["str", "C"]})
    cell, rid = g.index_of["q3_choice"], g.record_id("q3_choice")
    for gid, where, points in ((rid, cell, 1), ("q3_choice", cell, 0), (rid + "x", cell, 0), (rid, cell - 1, 0)):
        result = _result(g, (gid, good[0], where, good[1]), (gid, "done", where, {}))
        (row,) = score("s", "01_count", tests, result, g, expected)
        assert (row.points, row.status) == (points, Status.PASSED if points else Status.ERROR), (gid, where)


def test_failure_messages_are_short_and_hide_hidden_tests():
    hidden = 'check.equal("empty", count_words(""), 0)'
    assert _failure({"hidden": True, "ename": "ValueError", "message": "input=''"}, hidden) == \
        "a hidden test failed (ValueError)"
    assert _failure({"hidden": True, "ename": "AssertionError", "message": "x"}, hidden) == "a hidden test failed"
    assert _failure({"hidden": True, "ename": "Leak_'secret'", "message": ""}, hidden) == \
        "a hidden test failed (an exception)"
    long = _failure({"hidden": False, "ename": "ValueError", "message": "y" * 5000}, "")
    assert len(long) == len("ValueError: ") + MAX_STUDENT_TEXT and long.endswith("...")
    # a visible failure in a cell that has hidden checks shows no student text at all (issue 27, item 8)
    reformatted = _failure({"hidden": False, "ename": "ValueError", "message": "empty <- count_words of ''"}, hidden)
    assert reformatted == "ValueError (text withheld: this test has hidden checks)"


def test_csv_cells_cannot_be_formulas_and_read_back_unchanged(tmp_path):
    values = ["=1+2", "+A1", "-2", "@SUM(A1)", "\tx", "\rx", "'=x", "plain", "it's", ""]
    assert [restore(neutralise(v)) for v in values] == values
    rows = [Row(v or "s", "=nb", "g", 0, 1, Status.FAILED, v) for v in values]
    append_rows(tmp_path / "g.csv", rows)
    with (tmp_path / "g.csv").open(newline="") as f:
        cells = [c for r in csv.reader(f) for c in r]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert read_gradebook(tmp_path / "g.csv") == rows
    assert read_gradebook(tmp_path / "g.csv")[0].status is Status.FAILED


def test_feedback_escapes_html_and_fences_student_text(tmp_path):
    rows = [Row("<b>eve</b>", "01_count", "q1", 0, 2, Status.FAILED, "ValueError: <script>x</script> ``a`` | b\nc")]
    (path,) = write_feedback(tmp_path, rows)
    text = path.read_text()
    assert "<script" not in text and "<b>" not in text
    assert "``` ValueError: &lt;script&gt;x&lt;/script&gt; ``a`` \\| b c ```" in text
    assert "# Feedback for ` &lt;b&gt;eve&lt;/b&gt; `" in text and path.parent == tmp_path


def test_links_and_non_regular_files_are_refused(tmp_path):
    (tmp_path / "solutions").mkdir()
    nbformat.write(solution_nb(), tmp_path / "solutions" / "01_count.ipynb")
    subs = tmp_path / "subs"
    (subs / "eve").mkdir(parents=True)
    os.symlink("../../solutions/01_count.ipynb", subs / "eve" / "01_count.ipynb")
    os.symlink(tmp_path / "solutions", subs / "mallory")
    os.mkfifo(subs / "eve" / "02_fifo.ipynb")
    found = discover(subs)
    assert [(s, p.name) for s, p in found] == [("eve", "01_count.ipynb"), ("eve", "02_fifo.ipynb"), ("mallory", "mallory")]
    assert all(refusal(p).startswith("refused: ") for _, p in found)
    with pytest.raises(PermissionError, match="symbolic link"):
        read_submission(subs / "eve" / "01_count.ipynb")


def test_status_is_one_typed_set():
    assert {s.value for s in Status} == {"passed", "failed", "timeout", "kernel died", "missing answer",
                                         "unreadable", "refused", "error"}
    assert str(Status.KERNEL_DIED) == "kernel died" and Status("refused") is Status.REFUSED


@needs_sandbox
def test_the_sandbox_mounts_course_lib_alone_and_never_the_repository(tmp_path):
    import course_lib
    cmd = sandbox.kernel_options(tmp_path / "k", 64)
    repo = Path(course_lib.__file__).resolve().parents[1]
    binds = [(cmd[i], cmd[i + 1], cmd[i + 2]) for i, a in enumerate(cmd) if a in ("--bind", "--ro-bind")]
    sources = {Path(src) for _, src, _ in binds}
    assert repo not in sources and (repo / "solutions") not in sources
    assert ("--ro-bind", str(repo / "course_lib"), sandbox.LIB + "/course_lib") in binds
    assert [b[1:] for b in binds if b[0] == "--bind"] == [(str(tmp_path / "k"),) * 2]  # nothing else writable
    assert cmd[cmd.index("--tmpfs") - 2:cmd.index("--tmpfs") + 2] == ["--size", str(64 * 1024**2), "--tmpfs", sandbox.HOME]
    last_mount = max(i for i, a in enumerate(cmd) if a in ("--bind", "--ro-bind", "--tmpfs", "--dev", "--proc"))
    assert [cmd[i + 1] for i, a in enumerate(cmd) if a == "--remount-ro" and i > last_mount] == ["/", "/dev"]
    for flag in ("--unshare-pid", "--unshare-net", "--die-with-parent", "--clearenv"):
        assert flag in cmd
    assert ("--disable-userns" in cmd) is sandbox._probe()[1]


def test_records_are_credited_to_the_cell_that_wrote_them_and_capped(tmp_path, monkeypatch):
    from course_lib.grading import runner
    path = tmp_path / "records.log"
    records = runner._Records(path, NONCE)
    path.write_text(f'{NONCE} {{"event": "done", "gid": "a"}}\nforged {{"event": "done", "gid": "b"}}\n{NONCE} {{"ev')
    records.take(4)
    with path.open("a") as f:
        f.write('ent": "done", "gid": "c"}\n' + f'{NONCE} {{"event": "done", "gid": "d"}}\n' * 1000)
    monkeypatch.setattr(runner, "MAX_RECORD_BYTES", 2000)
    records.take(7)
    assert [(e["gid"], e["cell"]) for e in records.events[:2]] == [("a", 4), ("c", 7)]
    assert 10 < len(records.events) < 60  # the flood is read up to the cap, no further


def test_a_visible_check_without_a_literal_never_shows_the_solutions_value():  # issue 27, item 9
    from course_lib.grading.grade import _compare_all
    want = [{"kind": "equal", "name": "answer_q3", "value": ["int", 768], "expected": None, "hint": "an int"}]
    assert _compare_all(want, [{"value": ["int", 700]}]) == "answer_q3: does not match the solution's value — an int"
    assert _compare_all(want, [{"value": ["str", "768"]}]) == \
        "answer_q3: does not match the solution's value (got str, not int) — an int"
    literal = [{**want[0], "expected": ["int", 768]}]  # written in the exercise: the message may say it
    assert "expected int 768, got int 700" in _compare_all(literal, [{"value": ["int", 700]}])


def test_a_row_that_cannot_be_written_becomes_an_error_row(tmp_path, monkeypatch):  # issue 27, item 1
    from course_lib.grading import batch
    from course_lib.grading.batch import GradeConfig, _write
    real, calls = batch.append_rows, []

    def flaky(path, rows):
        calls.append(rows)
        if len(calls) == 1:
            raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")
        real(path, rows)
    monkeypatch.setattr(batch, "append_rows", flaky)
    config = GradeConfig(out=tmp_path / "g.csv")
    _write(config, tmp_path / "cache", [Row("eve", "01_count", "q1", 2, 2, Status.PASSED, ""),
                                        Row("eve", "01_count", "q2", 0, 3, Status.FAILED, "x")])
    (row,) = read_gradebook(tmp_path / "g.csv")
    assert (row.student, row.grade_id, row.points, row.max_points, row.status) == ("eve", "*", 0, 5, Status.ERROR)
    assert "could not be written (UnicodeEncodeError)" in row.message
    assert Row("a\ud800\x00", "n", "g", 0, 1, Status.FAILED, "m\ud800\x00").student == "a\\ud800\\x00"
