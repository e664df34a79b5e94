"""Autograding for instructors: `course release` and `course grade` (issues 6 and 14).

Modules, one job each:
    check.py     the API lesson authors write in solution test cells: `check.equal/close/shape`
    observe.py   in-kernel recorder and type-strict encoder, built from references captured first
    verdict.py   comparing tagged observations, outside the kernel (and for teaching messages)
    markers.py   `### BEGIN/END SOLUTION`, hidden tests, rewriting test cells for the grader
    release.py   solutions/NN.ipynb -> exercises/NN.ipynb, and `--check`
    sandbox.py   the bubblewrap sandbox a grading kernel runs in, and what it can see
    limits.py    a cgroup per kernel where the machine allows one (memory, processes), else rlimits
    runner.py    one notebook in a fresh, sandboxed, memory-limited kernel with per-cell timeouts
    assemble.py  the graded notebook: submission cells + the solution's test cells, one token each
    grade.py     statuses and rows, scoring one submission, expectations from the solution
    review.py    the summary's `review` column: parsed code worth a human's look
    report.py    gradebook and summary CSV (formula-safe), feedback Markdown (HTML-safe), `--json`
    batch.py     the class: discovery (links refused), parallel grading, resume
    cli.py       the `course release` and `course grade` subcommands

Why a student cannot talk the grader into points
------------------------------------------------
A test cell used to be trusted if it "ran without an exception", which a student controls:
an object whose `__eq__` always says True, a float subclass that lies, a patched
`isinstance`, `AssertionError`, `math.isclose`, `torch.allclose`, or `check.equal` itself.
So the kernel is only asked for *observations*, and the verdict is taken outside it:

1. Test cells come from the instructor's solution notebook (by `grade_id`, hidden tests
   included), never from the submission; the submission's copies are dropped.
2. The grader's first cell, run before any student code, imports `observe.install`, which
   copies every builtin and library function it will need (`type`, `float.__repr__`,
   `torch.Tensor.tolist`, `os.write`, ...) into a closure, writing to the record file the
   grader opened for it (fd 3). The recorder is bound to a per-run random name
   (`_course_<nonce>`), and every record line carries the nonce; records go to that file with
   `os.write`, not to stdout, so printing cannot forge them and a dying kernel cannot take
   back what was written.
3. Each solution test cell is rewritten (AST): every `check.<kind>(name, value, ...)` call
   becomes `_course_<nonce>.observe(grade_id, hidden, kind, name, value, ...)`, so patching
   `course_lib.grading.check` changes nothing; the cell body is wrapped so that an exception
   records `fail` and completion records `done`.
4. The recorder encodes values type-strictly: only *exact* builtin types, torch tensors
   (via the captured unbound `Tensor.tolist`) and numpy arrays become data; a subclass or an
   unknown object becomes `["unsupported", name]`, which never matches.
5. Outside, a test cell earns its points only if `done` was recorded, no `fail`, and its
   observations equal, one for one, the observations recorded by running the *solution*
   notebook the same way (cached per solution hash), compared by `verdict.compare`.
   Visible `assert`s still run (a failing one fails the cell), but they can only take
   points away, never give them.
6. The kernel runs under RLIMIT_AS and, where the machine allows, in a cgroup of its own
   (memory incl. its tmpfs scratch, processes; set by a launcher before the kernel starts), with
   a per-cell timeout that interrupts, a per-notebook budget of 3x the solution's run time plus a
   slack, a cap on kept output (errors included) and on messages at the grader's sockets, and
   dead-kernel detection; each of those ends in 0 points with its reason, and the batch goes on:
   rows are cleaned before they are written, and a lost worker's notebooks are graded again.

Why a student cannot reach around the kernel (issue 14)
-------------------------------------------------------
7. The kernel runs in a bubblewrap sandbox (`sandbox.py`): read-only root and environment,
   course_lib alone (not the repository, so no solutions/), no grade cache, gradebook or other
   submissions, a private size-limited tmpfs scratch, no network, none of the grader's
   environment variables, its own PID namespace (whatever it starts dies with it) and, where
   the kernel allows, uid `nobody` with no nested user namespace. Without bwrap, grading stops
   with one clear error; `--no-sandbox` is an explicit, loudly warned opt-out.
8. Expectations are computed in the grading process from a sandboxed run of the solution and
   cached outside every sandbox; the gradebook is written by the grading process only, and
   `--resume` refuses a gradebook whose digest is not the one it last wrote.
9. The record channel: the launcher opens the record file outside the sandbox and hands the
   kernel only fd 3. Each test cell records under a one-time token (`q1:3f2a...`) that exists
   only in that cell's source, sent when the cell runs, and the grader credits a record only
   if it carries the right token *and* was written while that cell ran. The preamble is run
   outside the kernel's input history, so `In` shows no recorder details.
10. Messages are bounded: a hidden test's failure says only that it failed (and a builtin
   exception's name); a visible failure shows at most `MAX_STUDENT_TEXT` characters, and none
   (nor the student's value) in a test cell that has hidden checks. Hidden checks' expected values are not sent to the kernel.
   CSV cells cannot be formulas; feedback escapes HTML and fences student text in code spans.

What remains (docs/instructors.md, "Threat model"): code that inspects the *running* test cell
(`In[-1]`, frames, `sys.settrace`) sees that cell's token and inputs, so it can forge that one
test's visible checks; hidden values still have to be computed. Such code is in the submission
for anyone to read, and the summary's `review` column flags it.
"""

from course_lib.grading import check

__all__ = ["check"]
