"""`course release` and `course grade` (see EXERCISES.md and docs/instructors.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["COMMANDS"]


def _release_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--solutions", type=Path, default=Path("solutions"), help="folder of solution notebooks")
    p.add_argument("--exercises", type=Path, default=Path("exercises"), help="folder to write exercises to")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if exercises/ has drifted")


def _release_run(args: argparse.Namespace) -> int:
    from course_lib.grading.release import ReleaseConfig, check_release, release
    config = ReleaseConfig(solutions=args.solutions, exercises=args.exercises)
    if not config.solutions.is_dir():
        raise FileNotFoundError(f"no solutions folder at {config.solutions}")
    if args.check:
        problems = check_release(config)
        for line in problems:
            print(line, file=sys.stderr)
        if not problems:
            print(f"exercises in sync with {config.solutions}")
        return 1 if problems else 0
    for path in release(config):
        print(path)
    return 0


def _grade_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("submissions", type=Path, help="folder of <student>/<NN_topic>.ipynb, or one notebook")
    p.add_argument("--out", type=Path, default=Path("gradebook.csv"), help="gradebook CSV (one row per test)")
    p.add_argument("--solutions", type=Path, default=Path("solutions"), help="folder of solution notebooks")
    p.add_argument("--feedback", type=Path, default=None, help="folder for one Markdown file per student")
    p.add_argument("--jobs", type=int, default=1, help="submissions graded in parallel")
    p.add_argument("--timeout", type=int, default=60, help="seconds per cell")
    p.add_argument("--memory-mb", type=int, default=4096, help="memory limit of each kernel (0: none)")
    p.add_argument("--resume", action="store_true", help="keep the gradebook's rows, grade what is missing")
    p.add_argument("--json", action="store_true", help="print a JSON report on stdout")
    p.add_argument("--no-sandbox", action="store_true",
                   help="UNSAFE: run kernels without bubblewrap, as you, with your files in reach")


def _grade_run(args: argparse.Namespace) -> int:
    from course_lib.grading.batch import GradeConfig, GradebookChanged, grade_batch
    from course_lib.grading.report import report_json, summarize
    from course_lib.grading.runner import RunConfig
    from course_lib.grading.sandbox import SandboxUnavailable
    if args.jobs < 1 or args.timeout < 1:
        raise ValueError("--jobs and --timeout must be at least 1")
    run = RunConfig(cell_timeout=args.timeout, memory_mb=args.memory_mb, sandbox=not args.no_sandbox)
    config = GradeConfig(out=args.out, solutions=args.solutions, feedback=args.feedback, jobs=args.jobs,
                         resume=args.resume, run=run, progress=not args.json)
    try:
        rows = grade_batch(args.submissions, config)
    except (SandboxUnavailable, GradebookChanged) as exc:  # one clear line: what happened, what to do
        print(f"course grade: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(report_json(rows, config.out))
    else:
        for student, s in sorted(summarize(rows).items()):
            shown = "".join(c if c.isprintable() else "?" for c in student)  # no terminal escapes
            print(f"{shown:20s} {s['points']:4d} / {s['max_points']}")
        print(f"gradebook: {config.out}")
    return 0


COMMANDS = {
    "release": ("regenerate exercises/ from solutions/ (or --check that they are in sync)",
                _release_args, _release_run),
    "grade": ("grade student notebooks against solutions/ in fresh kernels; write a gradebook CSV",
              _grade_args, _grade_run),
}
