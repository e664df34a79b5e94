"""Comparing tagged observations (see `observe`) — plain data in, a message or None out.

Runs in the grading process (the verdict) and, for teaching messages only, inside the
student's notebook (`check.*`). Nothing here calls a method of a student's object.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["compare", "show", "KINDS"]

KINDS = ("equal", "close", "shape")


def show(tagged: Any, limit: int = 80) -> str:
    """A short readable form of a tagged value: `int 3`, `float 0.5`, `tensor (2, 3) torch.float32`."""
    if not isinstance(tagged, list) or len(tagged) != 2:
        return "nothing"
    tag, v = tagged
    if tag == "unsupported":
        return f"a {v}"
    if tag == "tensor":
        return f"{v['kind']} tensor of shape {tuple(v['shape'])} ({v['dtype']})"
    text = repr(_plain(tagged))
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{tag} {text}"


def _a(tag: str) -> str:
    return ("an " if tag[0] in "aeiou" else "a ") + tag


def _plain(tagged: list) -> Any:
    tag, v = tagged
    if tag in ("list", "tuple"):
        items = [_plain(x) for x in v]
        return items if tag == "list" else tuple(items)
    if tag == "dict":
        return {k: _plain(x) for k, x in v}
    return v


def _close(a: Any, b: Any, rel: float, abs_: float) -> bool:
    """Elementwise isclose over nested lists of numbers (tensor data)."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y, rel, abs_) for x, y in zip(a, b))
    ok = (int, float, bool)
    if type(a) in ok and type(b) in ok:
        return a == b if (type(a) is bool or type(b) is bool) else math.isclose(a, b, rel_tol=rel, abs_tol=abs_)
    return False


def _mismatch(kind: str, got: list, exp: list, rel: float, abs_: float) -> bool:
    """True when `got` does not match `exp` under `kind` ("equal" or "close")."""
    gt, gv = got
    et, ev = exp
    if gt == "unsupported":
        return True
    if kind == "close" and gt in ("int", "float") and et in ("int", "float"):
        return not math.isclose(gv, ev, rel_tol=rel, abs_tol=abs_)
    if gt != et:
        return True
    if gt in ("list", "tuple"):
        return len(gv) != len(ev) or any(_mismatch(kind, g, e, rel, abs_) for g, e in zip(gv, ev))
    if gt == "dict":
        return [k for k, _ in gv] != [k for k, _ in ev] or any(
            _mismatch(kind, g, e, rel, abs_) for (_, g), (_, e) in zip(gv, ev))
    if gt == "tensor":
        if gv["shape"] != ev["shape"] or gv["data"] is None or ev["data"] is None:
            return True
        if kind == "equal":
            return gv["dtype"] != ev["dtype"] or gv["data"] != ev["data"]
        return not _close(gv["data"], ev["data"], rel, abs_)
    if gt == "float" and kind == "equal":
        return not (gv == ev or (math.isnan(gv) and math.isnan(ev)))
    return gv != ev


def compare(kind: str, got: list, expected: list, params: dict | None = None) -> str | None:
    """None when `got` matches `expected` under `kind`, else one sentence saying how it differs."""
    params = params or {}
    rel = params.get("rel_tol")
    abs_ = params.get("abs_tol")
    rel = 1e-6 if rel is None else rel
    abs_ = 0.0 if abs_ is None else abs_
    if got[0] == "unsupported":
        return f"expected {show(expected)}, got {show(got)} — return plain Python values or tensors"
    if kind not in KINDS:
        return f"unknown check kind {kind!r}"
    if not _mismatch("equal" if kind == "shape" else kind, got, expected, rel, abs_):
        return None
    if got[0] == "tensor" and expected[0] == "tensor" and got[1]["shape"] != expected[1]["shape"]:
        return f"expected shape {tuple(expected[1]['shape'])}, got {tuple(got[1]['shape'])}"
    if got[0] != expected[0] and not (kind == "close" and {got[0], expected[0]} <= {"int", "float"}):
        return f"expected {show(expected)}, got {show(got)} ({_a(got[0])}, not {_a(expected[0])})"
    tol = f" (rel_tol={rel:g})" if kind == "close" else ""
    return f"expected {show(expected)}, got {show(got)}{tol}"
