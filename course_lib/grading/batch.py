"""`course grade`: a class of submissions, in parallel, with nothing lost.

Each submission's rows are appended to the gradebook CSV (and flushed) as soon as they
arrive, so an interrupted batch keeps what it graded and `--resume` grades only the rest.
The summary CSV, feedback Markdown and `--json` report are rebuilt from the whole gradebook.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Iterator

from course_lib.grading.grade import Row, expectations, grade_submission, row_dict, suspicious
from course_lib.grading.runner import RunConfig

__all__ = ["GradeConfig", "grade_batch", "discover", "read_gradebook", "summarize", "write_feedback"]

COLUMNS = [f.name for f in fields(Row)]


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
    """(student, notebook) pairs from `<dir>/<student>/<NN_topic>.ipynb`, or a single notebook."""
    if submissions.is_file():
        return [(submissions.parent.name or "student", submissions)]
    if not submissions.is_dir():
        raise FileNotFoundError(f"{submissions} is neither a notebook nor a folder of student folders")
    found = []
    for student in sorted(p for p in submissions.iterdir() if p.is_dir() and not p.name.startswith(".")):
        found += [(student.name, nb) for nb in sorted(student.glob("*.ipynb"))]
    return found


def read_gradebook(path: Path) -> list[Row]:
    """All rows of a gradebook CSV (an empty list when it does not exist)."""
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return [Row(r["student"], r["notebook"], r["grade_id"], int(r["points"]), int(r["max_points"]),
                    r["status"], r["message"]) for r in csv.DictReader(f)]


def _append(path: Path, rows: list[Row]) -> None:
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        if new:
            writer.writeheader()
        writer.writerows(row_dict(r) for r in rows)
        f.flush()
        os.fsync(f.fileno())


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


def grade_batch(submissions: Path, config: GradeConfig) -> list[Row]:
    """Grade every submission not already in the gradebook; returns all rows of the gradebook."""
    pairs = discover(submissions)
    if not config.resume and config.out.exists():
        config.out.unlink()
    config.out.parent.mkdir(parents=True, exist_ok=True)
    done = {(r.student, r.notebook) for r in read_gradebook(config.out)}
    todo = [(s, p) for s, p in pairs if (s, p.stem) not in done]
    cache = config.cache or config.out.parent / ".grade-cache"
    needed = sorted({p.stem for _, p in todo if (config.solutions / p.name).exists()})
    expect: dict[str, dict] = {}
    sol_tasks = [(config.solutions / f"{stem}.ipynb", config.run, cache) for stem in needed]
    for (sol_path, _, _), res in _map(expectations, sol_tasks, config.jobs, "solutions", config.progress):
        if isinstance(res, Exception):
            raise ValueError(str(res))
        expect[sol_path.stem] = res  # type: ignore[assignment]
    rows_missing = [Row(s, p.stem, "*", 0, 0, "error", f"no solutions/{p.name} to grade it against")
                    for s, p in todo if p.stem not in expect]
    if rows_missing:
        _append(config.out, rows_missing)
    tasks = [(s, p, config.solutions / p.name, expect[p.stem], config.run) for s, p in todo if p.stem in expect]
    for (student, path, *_), res in _map(grade_submission, tasks, config.jobs, "grading", config.progress):
        if isinstance(res, Exception):
            total = sum(t["points"] for t in expect[path.stem]["tests"].values())
            res = [Row(student, path.stem, "*", 0, total, "error", f"grader error: {res}"[:300])]
        _append(config.out, res)  # type: ignore[arg-type]
    rows = read_gradebook(config.out)
    flags = {s: suspicious(p) for s, p in pairs}
    write_summary(config.out.with_name(config.out.stem + "_summary.csv"), rows, flags)
    if config.feedback:
        write_feedback(config.feedback, rows)
    return rows


def summarize(rows: list[Row]) -> dict[str, dict]:
    """student -> {points, max_points, notebooks: {name: {points, max_points, tests: [...]}}}."""
    out: dict[str, dict] = {}
    for r in rows:
        st = out.setdefault(r.student, {"points": 0, "max_points": 0, "notebooks": {}})
        nb = st["notebooks"].setdefault(r.notebook, {"points": 0, "max_points": 0, "tests": []})
        for d in (st, nb):
            d["points"] += r.points
            d["max_points"] += r.max_points
        nb["tests"].append({"grade_id": r.grade_id, "points": r.points, "max_points": r.max_points,
                            "status": r.status, "message": r.message})
    return out


def write_summary(path: Path, rows: list[Row], flags: dict[str, list[str]]) -> None:
    """Per-student totals: student, points, max_points, percent, notebooks, review."""
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["student", "points", "max_points", "percent", "notebooks", "review"])
        for student, s in sorted(summarize(rows).items()):
            pct = round(100 * s["points"] / s["max_points"], 1) if s["max_points"] else 0.0
            w.writerow([student, s["points"], s["max_points"], pct, len(s["notebooks"]),
                        " ".join(flags.get(student, []))])


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def write_feedback(folder: Path, rows: list[Row]) -> list[Path]:
    """<student>.md per student: totals and one line per test (hidden tests show no source)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for student, s in sorted(summarize(rows).items()):
        lines = [f"# Feedback for {student}", "", f"**Total: {s['points']} / {s['max_points']}**", ""]
        for name, nb in sorted(s["notebooks"].items()):
            lines += [f"## {name} — {nb['points']} / {nb['max_points']}", "",
                      "| test | points | result |", "|---|---|---|"]
            for t in nb["tests"]:
                result = t["status"] + (f": {t['message']}" if t["message"] else "")
                lines.append(f"| {_cell(t['grade_id'])} | {t['points']} / {t['max_points']} | {_cell(result)} |")
            lines.append("")
        path = folder / f"{student}.md"
        path.write_text("\n".join(lines), encoding="utf-8")
        written.append(path)
    return written


def report_json(rows: list[Row], config: GradeConfig) -> str:
    """The `--json` report: paths and the per-student summary with every test."""
    return json.dumps({"gradebook": str(config.out),
                       "summary": str(config.out.with_name(config.out.stem + "_summary.csv")),
                       "students": summarize(rows)}, indent=1)
