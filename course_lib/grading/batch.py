"""`course grade`: a class of submissions, in parallel, sandboxed, with nothing lost.

Each submission's rows are appended to the gradebook CSV (and flushed) as soon as they
arrive, so an interrupted batch keeps what it graded and `--resume` grades only the rest.
Only this process writes the gradebook (kernels run in a sandbox that cannot see it), and it
keeps the digest of what it wrote: `--resume` refuses a gradebook that changed since. The
summary CSV, feedback Markdown and `--json` report are rebuilt from the whole gradebook.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import re
import stat
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from course_lib.grading import sandbox
from course_lib.grading.grade import Row, Status, expectations, grade_submission, refusal, suspicious
from course_lib.grading.report import append_rows, digest, read_gradebook, write_feedback, write_summary
from course_lib.grading.runner import RunConfig

__all__ = ["GradeConfig", "grade_batch", "discover", "GradebookChanged"]


class GradebookChanged(RuntimeError):
    """`--resume` on a gradebook whose bytes are not the ones the grader last wrote."""


@dataclass
class GradeConfig:
    """Everything `course grade` needs besides the submissions."""
    out: Path = Path("gradebook.csv")   # per-test rows; the summary goes next to it (*_summary.csv)
    solutions: Path = Path("solutions")  # solutions/<NN_topic>.ipynb matched by file name
    feedback: Path | None = None        # a folder for <student>.md, or None for no feedback
    jobs: int = 1                       # submissions graded in parallel (one kernel each)
    resume: bool = False                # keep the gradebook's rows and grade only what is missing
    cache: Path | None = None           # solution expectations cache; default: .grade-cache beside out
    progress: bool = True               # a tqdm bar on stderr
    run: RunConfig = field(default_factory=RunConfig)


def discover(submissions: Path) -> list[tuple[str, Path]]:
    """(student, notebook) pairs from `<dir>/<student>/<NN_topic>.ipynb`, or a single notebook.

    Symlinks and other non-regular entries are listed too (never followed): grading refuses them
    with a row that says so.
    """
    if submissions.is_file():
        return [(submissions.parent.name or "student", submissions)]
    if not submissions.is_dir():
        raise FileNotFoundError(f"{submissions} is neither a notebook nor a folder of student folders")
    found = []
    for student in sorted(p for p in submissions.iterdir() if not p.name.startswith(".")):
        mode = os.lstat(student).st_mode
        if stat.S_ISLNK(mode):
            found.append((student.name, student))  # a linked student folder: one refused row
        elif stat.S_ISDIR(mode):
            found += [(student.name, nb) for nb in sorted(student.glob("*.ipynb"))]
    return found


def _pool(jobs: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))


def _map(fn, tasks: list[tuple], jobs: int, desc: str, progress: bool) -> Iterator[tuple[tuple, object]]:
    """(task, result) as each finishes; in-process when jobs == 1."""
    from tqdm.auto import tqdm
    bar = tqdm(total=len(tasks), desc=desc, unit="nb", disable=not progress or not tasks)
    try:
        if jobs <= 1 or len(tasks) <= 1:
            for task in tasks:
                yield task, _safe(fn, task)
                bar.update()
            return
        with _pool(min(jobs, len(tasks))) as pool:
            futures = {pool.submit(_safe, fn, task): task for task in tasks}
            for fut in as_completed(futures):
                try:
                    res = fut.result()
                except Exception as exc:  # a worker process died: that submission only
                    res = exc
                yield futures[fut], res
                bar.update()
    finally:
        bar.close()


def _safe(fn, task: tuple) -> object:
    try:
        return fn(*task)
    except Exception as exc:
        return exc


def _digest_file(cache: Path, out: Path) -> Path:
    return cache / f"gradebook-{hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:12]}.sha256"


def _start(config: GradeConfig, cache: Path) -> None:
    """Check the sandbox (or warn loudly without it), then clear or verify the gradebook."""
    if config.run.sandbox:
        sandbox.require()
    else:
        print(sandbox.NO_SANDBOX_WARNING, file=sys.stderr)
    mark = _digest_file(cache, config.out)
    if not config.resume and config.out.exists():
        config.out.unlink()
    elif config.resume and config.out.exists() and (not mark.exists() or mark.read_text() != digest(config.out)):
        raise GradebookChanged(f"{config.out} is not the file `course grade` last wrote (edited, appended to, or "
                               "written by something else): grade again without --resume")
    config.out.parent.mkdir(parents=True, exist_ok=True)


def _write(config: GradeConfig, cache: Path, rows: list[Row]) -> None:
    append_rows(config.out, rows)
    cache.mkdir(parents=True, exist_ok=True)
    _digest_file(cache, config.out).write_text(digest(config.out))


def grade_batch(submissions: Path, config: GradeConfig) -> list[Row]:
    """Grade every submission not already in the gradebook; returns all rows of the gradebook."""
    pairs = discover(submissions)
    cache = config.cache or config.out.parent / ".grade-cache"
    _start(config, cache)
    done = {(r.student, r.notebook) for r in read_gradebook(config.out)}
    todo = [(s, p) for s, p in pairs if (s, p.stem) not in done]
    needed = sorted({p.stem for _, p in todo if (config.solutions / p.name).exists()})
    expect: dict[str, dict] = {}
    sol_tasks = [(config.solutions / f"{stem}.ipynb", config.run, cache) for stem in needed]
    for (sol_path, _, _), res in _map(expectations, sol_tasks, config.jobs, "solutions", config.progress):
        if isinstance(res, Exception):
            raise ValueError(str(res))
        expect[sol_path.stem] = res  # type: ignore[assignment]
    def total(stem: str) -> int:
        return sum(t["points"] for t in expect[stem]["tests"].values()) if stem in expect else 0
    refused = [Row(s, p.stem, "*", 0, total(p.stem), Status.REFUSED, refusal(p)) for s, p in todo if refusal(p)]
    todo = [(s, p) for s, p in todo if not refusal(p)]
    rows_missing = [Row(s, p.stem, "*", 0, 0, Status.ERROR, f"no solutions/{p.name} to grade it against")
                    for s, p in todo if p.stem not in expect]
    if refused or rows_missing:
        _write(config, cache, refused + rows_missing)
    tasks = [(s, p, config.solutions / p.name, expect[p.stem], config.run) for s, p in todo if p.stem in expect]
    for (student, path, *_), res in _map(grade_submission, tasks, config.jobs, "grading", config.progress):
        if isinstance(res, Exception):
            res = [Row(student, path.stem, "*", 0, total(path.stem), Status.ERROR, f"grader error: {res}"[:300])]
        _write(config, cache, res)  # type: ignore[arg-type]
    rows = read_gradebook(config.out)
    flags: dict[str, list[str]] = {}
    for student, path in pairs:  # every notebook of a student, not only the last one
        odd = [] if re.fullmatch(r"\w[\w.-]*", student) else ["unusual student name"]
        flags[student] = sorted(set(flags.get(student, [])) | set(suspicious(path)) | set(odd))
    write_summary(config.out.with_name(config.out.stem + "_summary.csv"), rows, flags)
    if config.feedback:
        write_feedback(config.feedback, rows)
    return rows
