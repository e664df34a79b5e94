"""Checks for graded test cells: `from course_lib.grading import check`.

    check.equal("n_trainable", count_trainable(model), 131072, hint="r·(d+k), not d·k")
    check.close("loss", float(loss), 2.302, rel_tol=1e-3)
    check.shape("logits", logits, (2, 8, 256))
    check.close("hidden_big", scale(1000.0))      # no expected: the solution notebook's value

Run in a notebook, each call compares at once: a match prints `✓ name`, a mismatch raises
`CheckFailed` (an AssertionError) whose teaching message IPython shows as one line,
`✗ name: expected …, got … — hint` (messages.py; importing this module in a kernel also turns an
unanswered part's NameError / NotImplementedError into "not answered yet"). Under `course grade` the grader rewrites every `check.<kind>(...)` call in the
solution's test cells into a recorder that only *observes* the value; the verdict is then
taken outside the kernel against the solution notebook's own observation, so nothing the
student patches in the kernel (this module included) can change it.
"""

from __future__ import annotations

from typing import Any

from course_lib.grading import messages
from course_lib.grading.messages import CheckFailed
from course_lib.grading.observe import make_encoder
from course_lib.grading.verdict import compare

__all__ = ["equal", "close", "shape", "CheckFailed"]

messages.install()  # in an IPython kernel only: "not answered yet" instead of a traceback

_MISSING: Any = object()


def _check(kind: str, name: str, got: list, expected: Any, params: dict, hint: str) -> None:
    encode = make_encoder().encode
    if expected is _MISSING:  # hidden-style check: only the type is checked here
        if got[0] == "unsupported":
            raise CheckFailed(f"{name}: got {got[1]!r}, expected a plain Python value or a tensor"
                              + (f" — {hint}" if hint else ""))
        print(f"✓ {name} (its type; the grader compares the value)")
        return
    exp = encode(tuple(expected) if kind == "shape" else expected)
    message = compare(kind, got, exp, params)
    if message:
        raise CheckFailed(f"{name}: {message}" + (f" — {hint}" if hint else ""))
    print(f"✓ {name}")


def equal(name: str, value: Any, expected: Any = _MISSING, *, hint: str = "") -> None:
    """Same type and same value (ints, str, bool, None, lists, tuples, dicts, exact tensors); lesson: exercises."""
    _check("equal", name, make_encoder().encode(value), expected, {}, hint)


def close(name: str, value: Any, expected: Any = _MISSING, *, rel_tol: float = 1e-6,
          abs_tol: float = 0.0, hint: str = "") -> None:
    """Numbers, nested lists or tensors equal within `math.isclose` tolerances; lesson: exercises."""
    _check("close", name, make_encoder().encode(value), expected, {"rel_tol": rel_tol, "abs_tol": abs_tol}, hint)


def shape(name: str, value: Any, expected: Any = _MISSING, *, hint: str = "") -> None:
    """A torch tensor or numpy array whose shape is `expected`, e.g. `(2, 8, 256)`; lesson: exercises."""
    _check("shape", name, make_encoder().shape(value), expected, {}, hint)
