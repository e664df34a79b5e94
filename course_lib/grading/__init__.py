"""Autograding for instructors: `course release` and `course grade` (issue 6).

Modules, one job each:
    check.py    the API lesson authors write in solution test cells: `check.equal/close/shape`
    observe.py  in-kernel recorder and type-strict encoder, built from references captured first
    verdict.py  comparing tagged observations, outside the kernel (and for teaching messages)
    markers.py  `### BEGIN/END SOLUTION`, hidden tests, rewriting test cells for the grader
    release.py  solutions/NN.ipynb -> exercises/NN.ipynb, and `--check`
    runner.py   one notebook in a fresh, memory-limited kernel with per-cell timeouts
    grade.py    building graded notebooks, scoring, the batch, CSV / JSON / feedback
    cli.py      the `course release` and `course grade` subcommands

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
   `torch.Tensor.tolist`, `os.write`, ...) into a closure and opens a record file. The
   recorder is bound to a per-run random name (`_course_<nonce>`), and every record line
   carries the nonce; records go to that file with `os.write`, not to stdout, so printing
   cannot forge them and a dying kernel cannot take back what was written.
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
6. The kernel runs in a scratch directory under RLIMIT_AS (set by a wrapper before the
   kernel starts), with a per-cell timeout that interrupts, a cap on kept output, and
   dead-kernel detection; each of those ends in 0 points with its reason, and the batch goes on.

Out of scope: a student who reverse-engineers the grader at run time (walks `globals()` for
the nonce name, reads closures, hooks `sys.settrace` to read hidden test source). Such code
is visible in the submission; the feedback lists suspicious calls for a human to review.
"""

from course_lib.grading import check

__all__ = ["check"]
