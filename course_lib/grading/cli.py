"""`course release` and `course grade` (see EXERCISES.md and docs/instructors.md)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

__all__ = ["ReleaseArgs", "GradeArgs", "COMMANDS"]


@dataclass
class ReleaseArgs:
    """Options of `course release`."""

    solutions: Path = field(default=Path("solutions"), metadata={"help": "folder of solution notebooks"})
    exercises: Path = field(default=Path("exercises"), metadata={"help": "folder to write exercises to"})
    check: bool = field(default=False, metadata={"help": "write nothing; exit 1 if exercises/ has drifted"})


def _release_run(args: ReleaseArgs) -> int:
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


@dataclass
class GradeArgs:
    """Options of `course grade SUBMISSIONS`."""

    POSITIONAL: ClassVar[str] = "submissions"

    submissions: Path = field(metadata={"help": "folder of <student>/<NN_topic>.ipynb, or one notebook "
                                                "(may be given first, without --submissions)"})
    out: Path = field(default=Path("gradebook.csv"), metadata={"help": "gradebook CSV (one row per test)"})
    solutions: Path = field(default=Path("solutions"), metadata={"help": "folder of solution notebooks"})
    feedback: Path | None = field(default=None, metadata={"help": "folder for one Markdown file per student"})
    jobs: int = field(default=1, metadata={"help": "submissions graded in parallel"})
    timeout: int = field(default=60, metadata={"help": "seconds per cell"})
    memory_mb: int = field(default=4096, metadata={"help": "memory limit of each kernel process (0: none); "
                                                          "with a cgroup, of the kernel and its scratch together"})
    scratch_mb: int = field(default=1024, metadata={"help": "writable scratch of each kernel (in RAM, in the "
                                                            "sandbox) and its largest file"})
    max_procs: int = field(default=512, metadata={"help": "processes and threads one kernel may run"})
    time_slack: float = field(default=60.0, metadata={"help": "seconds a notebook may take beyond 3x its "
                                                              "solution's run time (at most 15 min)"})
    resume: bool = field(default=False, metadata={"help": "keep the gradebook's rows, grade what is missing"})
    json: bool = field(default=False, metadata={"help": "print a JSON report on stdout"})
    no_sandbox: bool = field(default=False, metadata={"help": "UNSAFE: run kernels without bubblewrap, as you, "
                                                              "with your files in reach"})


def _grade_run(args: GradeArgs) -> int:
    from course_lib.grading.batch import GradeConfig, GradebookChanged, grade_batch
    from course_lib.grading.report import report_json, summarize
    from course_lib.grading.runner import RunConfig
    from course_lib.grading.sandbox import SandboxUnavailable
    if args.jobs < 1 or args.timeout < 1:
        raise ValueError("--jobs and --timeout must be at least 1")
    run = RunConfig(cell_timeout=args.timeout, memory_mb=args.memory_mb, scratch_mb=args.scratch_mb,
                    max_procs=args.max_procs, time_slack=args.time_slack, sandbox=not args.no_sandbox)
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
                (ReleaseArgs,), _release_run),
    "grade": ("grade student notebooks against solutions/ in fresh kernels; write a gradebook CSV",
              (GradeArgs,), _grade_run),
}
