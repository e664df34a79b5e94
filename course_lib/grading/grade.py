"""Grading one submission: run its graded notebook (see `assemble`) and score each test cell.

Expectations come from grading the solution notebook itself the same way; they are computed
in the grading process from a sandboxed run of *your* solution and cached where no kernel can
see (`.grade-cache/` beside the gradebook). A test's records count only when they carry its
one-time token and were written while its own cell ran. Messages shown to students are short:
a hidden test's failure never echoes the student's value, exception text or the test's inputs.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import re
import stat
import time
from dataclasses import asdict, dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any

import nbformat

from course_lib.grading.assemble import Graded, build_graded
from course_lib.grading.markers import test_spec
from course_lib.grading.review import review_notebook
from course_lib.grading.runner import RunConfig, RunResult, new_nonce, run_notebook
from course_lib.grading.verdict import compare, show

__all__ = ["Status", "Row", "score", "expectations", "grade_submission", "read_submission", "refusal", "suspicious",
           "GRADER_VERSION", "MAX_STUDENT_TEXT", "clean_text", "time_budget"]

GRADER_VERSION = "3"     # part of the expectations cache key: bump when observations change meaning
MAX_STUDENT_TEXT = 160   # characters of a student's own exception text a visible failure may show
MAX_NOTEBOOK_BYTES = 50_000_000
TIME_FACTOR = 3          # a submission may take 3x the solution's run time (+ RunConfig.time_slack)
MAX_CELLS = 2_000        # cells per submission (lesson notebooks have < 100): validation time grows with it
_BUILTIN_ERRORS = {n for n, v in vars(builtins).items() if isinstance(v, type) and issubclass(v, BaseException)}


class Status(str, Enum):
    """Every value of a gradebook row's `status`."""
    PASSED = "passed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    KERNEL_DIED = "kernel died"
    MISSING_ANSWER = "missing answer"
    UNREADABLE = "unreadable"
    REFUSED = "refused"     # a symlink, a device or anything but a regular file in the submissions
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


def clean_text(text: object, limit: int = 300, name: bool = False) -> str:
    """`text` as one printable line any file accepts: lone surrogates, undecodable file-name bytes and
    control or format characters (NUL, escapes, bidi overrides) become `\\x..`/`\\u....` escapes, so two
    different names stay different; in a message (`name=False`) whitespace becomes a space."""
    s = str(text)
    s = "".join(c if c.isprintable() else " " if c.isspace() and not name
                else c.encode("unicode_escape").decode("ascii") if c < "\ud800" or c > "\udfff"
                else f"\\u{ord(c):04x}" for c in s)
    return s if len(s) <= limit else s[:limit - 3] + "..."


@dataclass
class Row:
    """One gradebook line: one test of one notebook of one student (text fields cleaned on creation)."""
    student: str
    notebook: str
    grade_id: str
    points: int
    max_points: int
    status: Status
    message: str

    def __post_init__(self) -> None:
        self.student, self.notebook, self.grade_id = (clean_text(t, 200, name=True) for t in
                                                       (self.student, self.notebook, self.grade_id))
        self.message = clean_text(self.message, 300)


def _events(result: RunResult, graded: Graded, gid: str) -> list[dict]:
    """The records of test `gid` that count: its token, written while its own cell ran."""
    if gid not in graded.tokens:
        return []
    rid, cell = graded.record_id(gid), graded.index_of[gid]
    return [e for e in result.events if e.get("gid") == rid and e.get("cell") == cell]


def _quotes(text: str, secret: str, width: int = 16) -> bool:
    """True when `text` contains any `width`-character piece of `secret` (a hidden test's source)."""
    secret, text = (" ".join(t.replace('"', "'").split()) for t in (secret, text))  # as ast.unparse quotes
    return len(secret) >= width and any(text[i:i + width] in secret for i in range(len(text) - width + 1))


def _failure(event: dict, hidden_source: str) -> str:
    """What a student may read about a test cell that raised."""
    ename = str(event.get("ename", ""))
    ename = ename if ename in _BUILTIN_ERRORS else "an exception"
    if event.get("hidden"):  # never the student's text: it could carry the hidden inputs
        return "a hidden test failed" if ename == "AssertionError" else f"a hidden test failed ({ename})"
    if hidden_source.strip():  # code that reads the running cell (linecache, frames) can reformat the
        return f"{ename} (text withheld: this test has hidden checks)"  # hidden calls past any quote filter
    text = " ".join(str(event.get("message", "")).split())
    if _quotes(text, hidden_source):
        text = "(message withheld: it quotes a hidden test)"
    text = text if len(text) <= MAX_STUDENT_TEXT else text[:MAX_STUDENT_TEXT - 3] + "..."
    return f"{ename}: {text}".rstrip(": ")


def _kinds(got: dict, want: dict) -> str:
    """' (got str, not int)' when the kinds differ, else ''."""
    tags = (got["value"] or ["?"])[0], want["value"][0]
    return "" if tags[0] == tags[1] or tags[0] == "unsupported" else f" (got {tags[0]}, not {tags[1]})"


def _compare_all(want: list[dict], got: list[dict], has_hidden: bool = False) -> str | None:
    """None when the student's observations match the solution's one for one, else the first difference."""
    for i, w in enumerate(want):
        name, hidden = w.get("name", "?"), w.get("hidden")
        if i >= len(got):
            return f"check '{name}' did not run"
        msg = compare(w["kind"], got[i]["value"], w["value"], w.get("params"))
        if msg is not None:
            if hidden or has_hidden:  # the kind of value only: its content could encode the hidden inputs
                tags = (got[i]["value"] or ["?"])[0], w["value"][0]
                kinds = "" if tags[0] == tags[1] or tags[0] == "unsupported" else f" (got {tags[0]}, not {tags[1]})"
                if hidden:
                    return f"hidden check '{name}' failed{kinds}"
                got_kind = (f"a different {tags[1]}" if tags[0] == tags[1] else "an unsupported value"
                            if tags[0] == "unsupported" else f"a {tags[0]}")
                return (f"{name}: expected {show(w['value'])}, got {got_kind} (value withheld: this test has "
                        "hidden checks)" + (f" — {w['hint']}" if w.get("hint") else ""))
            if w.get("expected") is None:  # the value is the solution's own, never written in the exercise
                return (f"{name}: does not match the solution's value{kinds}" if (kinds := _kinds(got[i], w))
                        else f"{name}: does not match the solution's value") + (f" — {w['hint']}" if w.get("hint") else "")
            return f"{name}: {msg}" + (f" — {w['hint']}" if w.get("hint") else "")
    if len(got) > len(want):
        return f"{len(got) - len(want)} more check(s) than the solution makes"
    return None


def score(student: str, notebook: str, tests: dict[str, dict], result: RunResult, graded: Graded,
          expected: dict[str, list[dict]]) -> list[Row]:
    """One Row per test, from the run's events and the solution's expectations."""
    rows = []
    for gid, spec in tests.items():
        def row(status: Status, message: str, points: int = 0) -> Row:
            return Row(student, notebook, gid, points, spec["points"], status, message)
        events = _events(result, graded, gid)
        fails = [e for e in events if e.get("event") == "fail"]
        done = any(e.get("event") == "done" for e in events)
        index = graded.index_of.get(gid)
        if gid in graded.missing:
            rows.append(row(Status.MISSING_ANSWER, graded.missing[gid]))
        elif index is not None and index in result.timed_out:
            rows.append(row(Status.TIMEOUT, "the test ran out of time (infinite loop?)"))
        elif fails:
            rows.append(row(Status.FAILED, _failure(fails[0], graded.hidden.get(gid, ""))))
        elif done:
            observed = [e for e in events if e.get("event") == "observe"]
            msg = _compare_all(expected.get(gid, []), observed, bool(graded.hidden.get(gid, "").strip()))
            rows.append(row(Status.PASSED, "", spec["points"]) if msg is None else row(Status.FAILED, msg))
        elif result.stopped and (result.stopped_at is None or index is None or result.stopped_at <= index):
            if result.stopped == "timeout":
                rows.append(row(Status.TIMEOUT, "stopped: the notebook ran out of time"))
            elif result.stopped == "kernel died":
                rows.append(row(Status.KERNEL_DIED, "stopped: the kernel died (os._exit, a crash or out of memory)"))
            else:
                rows.append(row(Status.ERROR, result.stopped))
        else:
            rows.append(row(Status.ERROR, "the test did not complete"))
    return rows


def _modules_for(solution: Any) -> tuple[str, ...]:
    text = "\n".join(c.source for c in solution.cells if c.cell_type == "code")
    return tuple(m for m in ("numpy", "torch") if re.search(rf"\b{m}\b", text))


def _tests_of(solution: Any) -> dict[str, dict]:
    return {s.grade_id: {"points": s.points} for s in map(test_spec, solution.cells) if s}


def _plain(events: list[dict]) -> list[dict]:
    """Observations as cached: without the run's cell index and token."""
    return [{k: v for k, v in e.items() if k not in ("cell", "gid")} for e in events if e.get("event") == "observe"]


def expectations(solution_path: Path, run: RunConfig, cache_dir: Path | None = None) -> dict:
    """Run the solution as a submission of itself; its observations are what students must match."""
    data = solution_path.read_bytes()
    key = hashlib.sha256(data + GRADER_VERSION.encode() + str(run.sandbox).encode()).hexdigest()[:16]
    cache = cache_dir / f"{solution_path.stem}-{key}.json" if cache_dir else None
    if cache and cache.exists():
        cached = json.loads(cache.read_text())
        if cached.get("solution_sha256") == hashlib.sha256(data).hexdigest():
            return cached
    solution = nbformat.reads(data.decode("utf-8"), as_version=4)
    tests, modules = _tests_of(solution), _modules_for(solution)
    nonce = new_nonce()
    graded = build_graded(solution, solution, nonce, hidden_expected=True)
    start = time.monotonic()
    result = run_notebook(graded.notebook, nonce, run, modules)
    seconds = time.monotonic() - start
    expected = {gid: _plain(_events(result, graded, gid)) for gid in tests}
    for gid, obs in expected.items():  # the solution must pass its own checks, `expected=` included
        for o in obs:
            if o.get("expected") is not None and compare(o["kind"], o["value"], o["expected"], o["params"]):
                raise ValueError(f"{solution_path}: the solution fails its own check {gid}/{o['name']}: "
                                 + compare(o["kind"], o["value"], o["expected"], o["params"]))
    for r in score("solution", solution_path.stem, tests, result, graded, expected):
        if r.status != Status.PASSED:
            raise ValueError(f"{solution_path}: the solution does not pass its own test {r.grade_id}: "
                             f"{r.status}: {r.message}")
    out = {"tests": tests, "modules": list(modules), "expected": expected, "seconds": round(seconds, 2),
           "solution_sha256": hashlib.sha256(data).hexdigest()}
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(out))
        tmp.replace(cache)
    return out


def refusal(path: Path) -> str:
    """Why `path` is not graded at all ('' when it is a regular file): links are never followed."""
    mode = os.lstat(path).st_mode
    if stat.S_ISREG(mode):
        return ""
    kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file"
    return f"refused: {path.name} is {kind}; hand in the notebook file itself"


def read_submission(path: Path) -> Any:
    """The notebook at `path`, refusing symlinks and non-regular files (PermissionError says which)."""
    why = refusal(path)
    if why:
        raise PermissionError(why)
    st = os.lstat(path)
    if st.st_size > MAX_NOTEBOOK_BYTES:
        raise ValueError(f"{path.name} is {st.st_size // 1_000_000} MB, over the {MAX_NOTEBOOK_BYTES // 1_000_000} MB limit")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, encoding="utf-8") as f:
        text = f.read()
    cells = json.loads(text).get("cells")  # counted before nbformat's validation, whose cost grows with it
    if not isinstance(cells, list) or len(cells) > MAX_CELLS:
        raise ValueError(f"{path.name} has {len(cells) if isinstance(cells, list) else 'no list of'} cells, "
                         f"over the {MAX_CELLS} cells a notebook may have")
    nb = nbformat.reads(text, as_version=4)
    nbformat.validate(nb)
    return nb


def time_budget(expect: dict, run: RunConfig) -> float:
    """Seconds a submission's notebook may take: TIME_FACTOR times the solution's own run plus
    `run.time_slack`, never more than `run.total_timeout` (a cell that sleeps just under the cell
    timeout, eighteen times, no longer costs eighteen timeouts)."""
    return min(run.total_timeout, TIME_FACTOR * float(expect.get("seconds", run.total_timeout)) + run.time_slack)


def grade_submission(student: str, path: Path, solution_path: Path, expect: dict, run: RunConfig) -> list[Row]:
    """Every test row for one submitted notebook; never raises (a failure becomes a row)."""
    name = path.stem
    total = sum(t["points"] for t in expect["tests"].values())
    try:
        submission = read_submission(path)
        solution = nbformat.read(solution_path, as_version=4)
    except PermissionError as exc:
        return [Row(student, name, "*", 0, total, Status.REFUSED, str(exc)[:300])]
    except Exception as exc:
        return [Row(student, name, "*", 0, total, Status.UNREADABLE, f"{type(exc).__name__}: {exc}"[:300])]
    try:
        nonce = new_nonce()
        graded = build_graded(solution, submission, nonce)
        run = replace(run, total_timeout=time_budget(expect, run))
        result = run_notebook(graded.notebook, nonce, run, tuple(expect["modules"]))
        return score(student, name, expect["tests"], result, graded, expect["expected"])
    except Exception as exc:
        return [Row(student, name, "*", 0, total, Status.ERROR, f"grader error: {type(exc).__name__}: {exc}"[:300])]


def suspicious(path: Path) -> list[str]:
    """What in a submission the sandbox and the verdict make useless but a human may want to read
    (`review.review_flags`: parsed, not pattern-matched)."""
    try:
        nb = read_submission(path)
    except PermissionError:
        return ["not a regular file"]
    except Exception:
        return []
    return review_notebook([c for c in nb.cells if not test_spec(c)])


def row_dict(row: Row) -> dict:
    """A Row as a dict in CSV column order (status as its string value)."""
    return {**asdict(row), "status": row.status.value}
