"""The summary's `review` column: what in a submission a human may want to read (issue 27, item 10).

Nothing here decides a grade (the sandbox and the verdict do); it points an instructor at code that
reaches for the grader's machinery. It parses each code cell instead of matching text, so a name
that merely contains a pattern (`load_course_dataset`) is not flagged, and it folds strings built
from pieces (`'/pr' + 'oc'`, `''.join([...])`, f-strings of constants) before looking at them; code
built at run time (`exec`, `eval`, `compile`, `getattr` with a computed name, `__import__`) is
flagged as such, since no reading of the source can say what it does. A cell that is not valid
Python is flagged too. On the course's own solutions (tests/test_grading.py measures it) it flags
nothing.
"""

from __future__ import annotations

import ast
from typing import Any

__all__ = ["review_flags", "review_notebook"]

# attribute or name -> why it is worth a look (introspection of the running cell, the recorder, the kernel)
_NAMES = {
    "settrace": "tracing", "setprofile": "tracing", "_getframe": "frames", "f_back": "frames", "f_code": "frames",
    "f_globals": "frames", "f_locals": "frames", "tb_frame": "frames", "gi_frame": "frames", "currentframe": "frames",
    "__closure__": "closures", "cell_contents": "closures", "__code__": "code objects", "__globals__": "globals",
    "__builtins__": "builtins", "__subclasses__": "subclasses", "get_ipython": "the IPython shell",
    "user_ns": "the IPython shell", "set_custom_exc": "the IPython shell", "input_transformers_post": "input transformers",
    "input_transformers_cleanup": "input transformers", "excepthook": "excepthook", "linecache": "linecache",
    "ctypes": "ctypes", "subprocess": "processes", "system": "processes", "popen": "processes", "fork": "processes",
    "forkpty": "processes", "execv": "processes", "execve": "processes", "spawnv": "processes", "_exit": "os._exit",
    "kill": "signals", "killpg": "signals", "setrlimit": "rlimits", "prlimit": "rlimits", "reload": "reloading modules",
    "get_objects": "gc", "get_referrers": "gc", "threading": "threads", "Thread": "threads",
    "multiprocessing": "processes", "fdopen": "raw file descriptors", "dup2": "raw file descriptors",
    "builtins": "builtins", "importlib": "importlib", "socket": "sockets", "__file__": "module files",
}
_MODULES = {"sys", "os", "builtins", "__builtins__", "gc", "importlib", "posix", "io"}
_DYNAMIC = {"exec": "exec", "eval": "eval", "compile": "compile", "__import__": "__import__"}
# strings (after folding) that name the grader's or the host's files
_STRINGS = ("/proc", "/sys/", "solutions", ".grade-cache", "gradebook", "site-packages", ".pth", ".ipynb",
            "_course_", "environ", "/dev/", "/opt/course")


def _fold(node: ast.AST) -> str | None:
    """The string a constant expression builds (`'a' + 'b'`, `''.join(['a', 'b'])`, f'{"a"}b'), else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _fold(node.left), _fold(node.right)
        return None if left is None or right is None else left + right
    if isinstance(node, ast.JoinedStr):
        parts = [_fold(v.value if isinstance(v, ast.FormattedValue) else v) for v in node.values]
        return None if any(p is None for p in parts) else "".join(parts)  # type: ignore[arg-type]
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "join"
            and len(node.args) == 1 and isinstance(node.args[0], (ast.List, ast.Tuple))):
        sep, items = _fold(node.func.value), [_fold(e) for e in node.args[0].elts]
        return None if sep is None or any(i is None for i in items) else sep.join(items)  # type: ignore[arg-type]
    return None


def review_flags(source: str) -> set[str]:
    """What in one code cell is worth a human's look (empty for ordinary code)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        # IPython syntax (`!cmd`, `%magic`) is not Python: flag only what runs a shell
        lines = [ln.strip() for ln in source.splitlines()]
        return {"shell escape"} if any(ln.startswith(("!", "%%bash", "%%sh", "%system", "%sx")) for ln in lines) \
            else ({"not valid Python"} if not any(ln.startswith("%") for ln in lines) else set())
    found: set[str] = set()
    for node in ast.walk(tree):
        name = (node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name)
                else None)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                top = ((node.module or "") if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
                for part in (top, alias.name.split(".")[-1]):
                    if part in _NAMES:
                        found.add(_NAMES[part])
        if name is not None:
            if name in _NAMES:
                found.add(_NAMES[name])
            if name in _DYNAMIC and isinstance(node, ast.Name):
                found.add(f"code built at run time ({_DYNAMIC[name]})")
            if name.startswith("_course_"):
                found.add("the grader's recorder")
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "setattr")
                and len(node.args) >= 2 and _fold(node.args[1]) is None and isinstance(node.args[0], ast.Name)
                and node.args[0].id in _MODULES):
            found.add(f"computed attribute names ({node.func.id} on {node.args[0].id})")
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "setattr")
                and len(node.args) >= 2 and _fold(node.args[1]) in _NAMES):
            found.add(_NAMES[_fold(node.args[1])])  # type: ignore[index]
        if (isinstance(node, ast.Subscript) and isinstance(node.ctx, (ast.Store, ast.Del))
                and isinstance(node.value, ast.Attribute) and node.value.attr == "modules"):
            found.add("sys.modules")  # replacing a module; reading sys.modules is ordinary
        text = _fold(node) if isinstance(node, (ast.Constant, ast.BinOp, ast.JoinedStr, ast.Call)) else None
        if text:
            found |= {f"the string {s!r}" for s in _STRINGS if s in text}
    return found


def review_notebook(cells: list[Any]) -> list[str]:
    """Sorted flags over a notebook's code cells (the caller leaves out the grader's own test cells)."""
    return sorted(set().union(*(review_flags(c.source) for c in cells if c.cell_type == "code")))
