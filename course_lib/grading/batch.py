"""`course grade`: a class of submissions, in parallel, sandboxed, with nothing lost.

Each submission's rows are appended to the gradebook CSV (and flushed) as soon as they
arrive, so an interrupted batch keeps what it graded and `--resume` grades only the rest (and
grades again what ended in `error`). Only this process writes the gradebook (kernels run in a
sandbox that cannot see it), and it keeps the digest of what it wrote: `--resume` refuses a
gradebook that changed since. Nothing a submission does stops the batch: rows that cannot be
written become error rows, a worker process that dies (killed for memory) has its submissions
graded again one by one in fresh workers, and a solution that cannot run (a model not converted
yet) gives its notebook's students an error row while the other notebooks are graded. The
summary CSV, feedback Markdown and `--json` report are rebuilt from the whole gradebook.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import os
import re
import shutil
import stat
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

from course_lib.grading import sandbox
from course_lib.grading.grade import (Row, Status, clean_text, expectations, grade_submission, refusal,
                                      suspicious)
from course_lib.grading.report import (append_rows, digest, read_gradebook, rewrite_rows, write_feedback,
                                       write_summary)
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
    """(task, result) as each finishes; in-process when jobs == 1.

    When a worker dies (the OOM killer, a signal), the pool breaks and every task still in it is
    lost; those are run again, each alone in a fresh one-worker pool, so only the task that kills
    its worker ends as an error.
    """
    from tqdm.auto import tqdm
    bar = tqdm(total=len(tasks), desc=desc, unit="nb", disable=not progress or not tasks)
    try:
        if jobs <= 1 or len(tasks) <= 1:
            for task in tasks:
                yield task, _safe(fn, task)
                bar.update()
            return
        lost = []
        with _pool(min(jobs, len(tasks))) as pool:
            futures = {pool.submit(_safe, fn, task): task for task in tasks}
            for fut in as_completed(futures):
                try:
                    res = fut.result()
                except BrokenProcessPool:
                    lost.append(futures[fut])
                    continue
                except Exception as exc:
                    res = exc
                yield futures[fut], res
                bar.update()
        for task in lost:  # a worker died: each of its tasks again, alone
            with _pool(1) as pool:
                try:
                    res = pool.submit(_safe, fn, task).result()
                except BrokenProcessPool:
                    res = RuntimeError("the grading process was killed while grading this notebook "
                                       "(out of memory?)")
                except Exception as exc:
                    res = exc
            yield task, res
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


def _key(student: str, notebook: str) -> tuple[str, str]:
    """(student, notebook) as a gradebook row spells them (cleaned)."""
    return clean_text(student, 200, name=True), clean_text(notebook, 200, name=True)


def _start(config: GradeConfig, cache: Path) -> None:
    """Check the sandbox (or warn loudly without it), then clear or verify the gradebook.

    `--resume` keeps the rows of notebooks that were graded and drops those of notebooks with an
    `error` row (a lost worker, a solution that could not run), so they are graded again."""
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
    if config.resume and config.out.exists():
        rows = read_gradebook(config.out)
        failed = {(r.student, r.notebook) for r in rows if r.status == Status.ERROR}
        if failed:
            rewrite_rows(config.out, [r for r in rows if (r.student, r.notebook) not in failed])
            _digest_file(cache, config.out).write_text(digest(config.out))


def _write(config: GradeConfig, cache: Path, rows: list[Row]) -> None:
    """Append rows; a row that cannot be written becomes an error row for its notebook, never a crash."""
    try:
        append_rows(config.out, rows)
    except Exception as exc:
        seen: dict[tuple[str, str], int] = {}
        for r in rows:
            seen[(r.student, r.notebook)] = seen.get((r.student, r.notebook), 0) + r.max_points
        append_rows(config.out, [Row(s, nb, "*", 0, total, Status.ERROR,
                                     f"grader error: its rows could not be written ({type(exc).__name__})")
                                 for (s, nb), total in seen.items()])
    cache.mkdir(parents=True, exist_ok=True)
    _digest_file(cache, config.out).write_text(digest(config.out))


def _model_hint(solution: Path) -> str:
    """' (run `course get-model NAME` first: ...)' when the solution uses a named model that is not converted."""
    from course_lib.models.zoo import NAMED_MODELS, is_converted  # heavy (torch): only when a solution failed
    try:
        text = solution.read_text(encoding="utf-8")
    except OSError:
        return ""
    uses_default = "DEFAULT_MODEL" in text  # sft.DEFAULT_MODEL is smollm2-135m-instruct
    for name in NAMED_MODELS:
        if (name in text or uses_default) and not is_converted(name):
            return f" (it needs the model {name}, not converted yet: run `course get-model {name}` first)"
    return ""


def _scratch_root() -> Path:
    """This batch's folder for kernels' scratch; folders of batches whose process is gone are removed."""
    tmp = Path(tempfile.gettempdir())
    for old in tmp.glob("course-grade-batch-*"):
        pid = old.name.split("-")[3] if old.name.count("-") >= 4 else ""
        alive = pid.isdigit() and Path(f"/proc/{pid}").exists()
        if not alive and old.is_dir() and old.stat().st_uid == os.getuid():
            shutil.rmtree(old, ignore_errors=True)  # left by a grader that was killed
    return Path(tempfile.mkdtemp(prefix=f"course-grade-batch-{os.getpid()}-"))


def grade_batch(submissions: Path, config: GradeConfig) -> list[Row]:
    """Grade every submission not already in the gradebook; returns all rows of the gradebook."""
    pairs = discover(submissions)
    cache = config.cache or config.out.parent / ".grade-cache"
    _start(config, cache)
    scratch = _scratch_root()
    try:
        _grade_missing(pairs, config, cache, replace(config.run, scratch_root=str(scratch)))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    rows = read_gradebook(config.out)
    flags: dict[str, list[str]] = {}
    for student, path in pairs:  # every notebook of a student, not only the last one
        key = _key(student, "")[0]
        odd = [] if re.fullmatch(r"\w[\w.-]*", student) else ["unusual student name"]
        with contextlib.suppress(Exception):
            odd += suspicious(path)
        flags[key] = sorted(set(flags.get(key, [])) | set(odd))
    write_summary(config.out.with_name(config.out.stem + "_summary.csv"), rows, flags)
    if config.feedback:
        write_feedback(config.feedback, rows)
    return rows


def _grade_missing(pairs: list[tuple[str, Path]], config: GradeConfig, cache: Path, run: RunConfig) -> None:
    done = {(r.student, r.notebook) for r in read_gradebook(config.out)}
    todo = [(s, p) for s, p in pairs if _key(s, p.stem) not in done]
    needed = sorted({p.stem for _, p in todo if (config.solutions / p.name).exists()})
    expect: dict[str, dict] = {}
    broken: dict[str, str] = {}
    sol_tasks = [(config.solutions / f"{stem}.ipynb", run, cache) for stem in needed]
    for (sol_path, _, _), res in _map(expectations, sol_tasks, config.jobs, "solutions", config.progress):
        if isinstance(res, Exception):  # this notebook's students get an error row; the others are graded
            broken[sol_path.stem] = f"the solution could not be run{_model_hint(sol_path)}: {res}"
            print(f"course grade: {sol_path}: {broken[sol_path.stem]}"[:400], file=sys.stderr)
        else:
            expect[sol_path.stem] = res  # type: ignore[assignment]

    def total(stem: str) -> int:
        return sum(t["points"] for t in expect[stem]["tests"].values()) if stem in expect else 0
    refused = [Row(s, p.stem, "*", 0, total(p.stem), Status.REFUSED, refusal(p)) for s, p in todo if refusal(p)]
    todo = [(s, p) for s, p in todo if not refusal(p)]
    rows_missing = [Row(s, p.stem, "*", 0, 0, Status.ERROR, broken.get(p.stem, f"no solutions/{p.name} to grade "
                                                                       "it against"))
                    for s, p in todo if p.stem not in expect]
    if refused or rows_missing:
        _write(config, cache, refused + rows_missing)
    tasks = [(s, p, config.solutions / p.name, expect[p.stem], run) for s, p in todo if p.stem in expect]
    for (student, path, *_), res in _map(grade_submission, tasks, config.jobs, "grading", config.progress):
        if isinstance(res, Exception):
            res = [Row(student, path.stem, "*", 0, total(path.stem), Status.ERROR, f"grader error: {res}")]
        _write(config, cache, res)  # type: ignore[arg-type]
