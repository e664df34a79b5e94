"""What a student sees when a test cell of an exercise fails: a sentence, not a traceback.

In an IPython kernel (JupyterLab, VS Code, nbgrader's Validate), importing `course_lib.grading.check`
calls `install()`, which renders two errors of an exercise notebook as one line each:

- `NotImplementedError` from an answer cell's stub (`raise NotImplementedError()`): "not answered yet";
- `NameError` in a test cell: the name an answer cell above should define — "not answered yet".

A failed `check.*` renders itself (`CheckFailed._render_traceback_`): `✗ name: expected …, got … — hint`,
without the frames of course_lib's internals. Every other error keeps IPython's usual traceback.
`course check` (selfcheck.py) reads the same lines back.
"""

from __future__ import annotations

import linecache
from types import TracebackType

__all__ = ["NOT_ANSWERED", "CheckFailed", "install", "not_answered_message"]

NOT_ANSWERED = "not answered yet"
STUB_LINE = "raise NotImplementedError()"
TEST_CELL_IMPORT = "from course_lib.grading import check"


class CheckFailed(AssertionError):
    """A visible check's mismatch; rendered in a notebook as one line, `✗ <message>`."""

    def _render_traceback_(self) -> list[str]:  # IPython's hook for an exception's own rendering
        return [f"✗ {self}"]


def _frames(tb: TracebackType | None) -> list:
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    return frames


def _cell_source(frame) -> str:
    return "".join(linecache.getlines(frame.f_code.co_filename))


def not_answered_message(exc: BaseException, tb: TracebackType | None) -> str | None:
    """The one-line message for an unanswered part, or None when `exc` is not one."""
    frames = [f for f in _frames(tb) if not f.f_code.co_filename.endswith(("interactiveshell.py", "async_helpers.py"))]
    if not frames:
        return None
    inner, outer = frames[-1], frames[0]
    if isinstance(exc, NotImplementedError):
        line = linecache.getline(inner.f_code.co_filename, inner.f_lineno).strip()
        if line != STUB_LINE:
            return None
        if inner.f_code.co_name == "<module>":
            return (f"{NOT_ANSWERED}: replace `# YOUR CODE HERE` and `{STUB_LINE}` in this cell with your code, "
                    "run it, then the test cell below.")
        return (f"{NOT_ANSWERED}: `{inner.f_code.co_name}` still raises NotImplementedError() — write it in its "
                "answer cell above, run that cell, then this one.")
    if isinstance(exc, NameError) and TEST_CELL_IMPORT in _cell_source(outer) and getattr(exc, "name", None):
        return (f"{NOT_ANSWERED}: `{exc.name}` is not defined — an answer cell above defines it: write your "
                "code there, run that cell, then this one.")
    return None


def _handler(shell, etype, value, tb, tb_offset=None):
    """IPython's custom-exception hook: it must show the error itself (run_code ignores what it returns)."""
    message = not_answered_message(value, tb)
    stb = [message] if message else shell.InteractiveTB.structured_traceback(etype, value, tb, tb_offset=tb_offset)
    shell._showtraceback(etype, value, stb)  # the kernel's error message: ename, evalue, these lines


def install() -> None:
    """Register the renderer for NameError and NotImplementedError in the running IPython kernel, if any."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None or getattr(shell, "_course_messages", False):
        return
    shell.set_custom_exc((NameError, NotImplementedError), _handler)
    shell._course_messages = True
