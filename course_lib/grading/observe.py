"""Observations: turning a student's values into plain, tagged data that cannot lie.

Everything here that runs inside a grading kernel is built by a factory (`make_encoder`,
`install`) that copies the builtins and library functions it needs into a closure *before any
student code runs*, so a student who later rebinds `type`, `isinstance`, `float`, `json`,
`torch.Tensor.tolist` or this module's globals does not change what gets recorded.

Tagged data (`encode(value)`): `["int", 3]`, `["float", 0.5]`, `["bool", True]`, `["str", "C"]`,
`["none", None]`, `["list", [...]]`, `["tuple", [...]]`, `["dict", [[key, value], ...]]`,
`["tensor", {"kind": "torch", "dtype": "torch.float32", "shape": [2, 3], "data": [[...]]}]`,
or `["unsupported", "MyFloat"]` for anything that is not *exactly* one of those types
(a float subclass, an object with its own `__eq__`, a tensor subclass): it never matches.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["Encoder", "make_encoder", "install", "MAX_ITEMS"]

MAX_ITEMS = 100_000  # elements per observation; bigger tensors record shape and dtype only


@dataclass(frozen=True)
class Encoder:
    """The three functions `make_encoder` builds, each closed over references captured at build time."""
    encode: Callable[[Any], list]      # value -> tagged data
    shape: Callable[[Any], list]       # tensor or array -> ["tuple", [["int", d], ...]]
    type_name: Callable[[Any], str]    # the qualified name of a value's exact type, never raising


def make_encoder(modules: tuple[str, ...] = ("numpy", "torch")) -> Encoder:
    """Return an `Encoder` using references captured now (lesson: exercises)."""
    import builtins
    _type, _len, _str, _repr = builtins.type, builtins.len, builtins.str, builtins.repr
    _list, _tuple, _sorted, _getattr = builtins.list, builtins.tuple, builtins.sorted, builtins.getattr
    _int, _float, _bool, _dict, _none = builtins.int, builtins.float, builtins.bool, builtins.dict, _type(None)
    _Exception, _all, _issubclass = builtins.Exception, builtins.all, builtins.issubclass
    tensor_types: dict = {}  # exact class -> (kind, tolist, shape_of, dtype_of, prepare)
    scalar_types: tuple = ()
    item = None
    for name in modules:
        mod = sys.modules.get(name)
        if mod is None:
            continue
        if name == "torch":
            T = mod.Tensor
            detach, cpu, tolist, size, numel = T.detach, T.cpu, T.tolist, T.size, T.numel
            dtype_get = T.dtype.__get__
            prep = lambda t, detach=detach, cpu=cpu: cpu(detach(t))  # noqa: E731
            spec = ("torch", tolist, lambda t: _list(size(t)), lambda t: _str(dtype_get(t)), prep, numel)
            tensor_types[T] = spec
            tensor_types[mod.nn.Parameter] = spec
        elif name == "numpy":
            A = mod.ndarray
            a_tolist, a_shape, a_dtype, a_size = A.tolist, A.shape.__get__, A.dtype.__get__, A.size.__get__
            tensor_types[A] = ("numpy", a_tolist, lambda a: _list(a_shape(a)),
                               lambda a: "numpy." + _str(a_dtype(a)), lambda a: a, a_size)
            scalar_types = (mod.generic,)
            item = mod.generic.item

    def type_name(value: Any) -> str:
        try:
            return _str(_type(value).__qualname__)
        except _Exception:
            return "object"

    def enc(value: Any, depth: int) -> list:
        t = _type(value)
        if t is _bool:
            return ["bool", value is True]
        if t is _int:
            return ["int", _int.__index__(value)]
        if t is _float:
            return ["float", _float.__float__(value)]
        if t is _str:
            return ["str", _str.__str__(value)]
        if t is _none:
            return ["none", None]
        if depth > 20:
            return ["unsupported", "too deeply nested"]
        if t is _list or t is _tuple:
            items = _list.__iter__(value) if t is _list else _tuple.__iter__(value)
            out = [enc(v, depth + 1) for v in items]
            return ["list" if t is _list else "tuple", out]
        if t is _dict:
            keys = _dict.keys(value)
            if not _all(_type(k) is _str for k in keys):
                return ["unsupported", "dict with non-str keys"]
            return ["dict", [[k, enc(_dict.__getitem__(value, k), depth + 1)] for k in _sorted(keys)]]
        spec = tensor_types.get(t)
        if spec is not None:
            kind, tolist, shape_of, dtype_of, prep, numel = spec
            v = prep(value)
            big = numel(v) > MAX_ITEMS
            return ["tensor", {"kind": kind, "dtype": dtype_of(v), "shape": shape_of(v),
                               "data": None if big else tolist(v)}]
        if scalar_types and _issubclass(t, scalar_types[0]) and item is not None:
            return enc(item(value), depth)  # numpy scalar -> exact Python int/float/bool
        return ["unsupported", type_name(value)]

    def encode(value: Any) -> list:
        try:
            return enc(value, 0)
        except _Exception as exc:  # a hostile object can still raise; that is a failed observation
            return ["unsupported", f"{type_name(value)} ({type_name(exc)})"]

    def encode_shape(value: Any) -> list:
        spec = tensor_types.get(_type(value))
        if spec is None:
            return ["unsupported", type_name(value) + " (expected a tensor or array)"]
        return ["tuple", [["int", d] for d in spec[2](value)]]

    return Encoder(encode, encode_shape, type_name)


def _dumps_factory() -> Callable[[Any], str]:
    """A minimal JSON writer closed over C functions, so patching `json` changes nothing."""
    import json.encoder as je
    esc = je.c_encode_basestring_ascii or je.py_encode_basestring_ascii
    _type, _int, _float, _str, _bool, _list, _tuple, _dict = type, int, float, str, bool, list, tuple, dict
    items = dict.items
    f_repr, i_repr, join = float.__repr__, int.__repr__, ",".join
    special = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}

    def dumps(x: Any) -> str:
        t = _type(x)
        if x is None:
            return "null"
        if t is _bool:
            return "true" if x is True else "false"
        if t is _int:
            return i_repr(x)
        if t is _float:
            r = f_repr(x)
            return special.get(r, r)
        if t is _str:
            return esc(x)
        if t is _list or t is _tuple:
            return "[" + join([dumps(v) for v in x]) + "]"
        if t is _dict:
            return "{" + join([esc(k) + ":" + dumps(v) for k, v in items(x)]) + "}"
        return esc(_str(t))

    return dumps


def install(fd: int, nonce: str, modules: tuple[str, ...]) -> Any:
    """Called by the grader's first cell: import `modules`, capture everything, return the recorder.

    The recorder writes one line per event to `fd`, the record file the grader opened for the
    kernel outside its sandbox (written with `os.write`, so output printed or a kernel killed
    later loses nothing already recorded). `grade_id` arguments carry the test's one-time token
    (`"q1:3f2a..."`); the grader keeps a record only when its token is right and it was
    written while that test's cell ran:
    `observe(grade_id, hidden, kind, name, value, expected, **params)` for each `check.*` call,
    `fail(grade_id, hidden)` from the test cell's `except:`, `done(grade_id)` when it completed.
    """
    import importlib
    import os
    import types
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    encoder, dumps = make_encoder(modules), _dumps_factory()
    encode, encode_shape, type_name = encoder.encode, encoder.shape, encoder.type_name
    _write, _exc_info, _str, _type, _float = os.write, sys.exc_info, str, type, float
    _Exception, _list, _tuple, _missing = Exception, list, tuple, object()

    def emit(record: dict) -> None:
        _write(fd, (nonce + " " + dumps(record) + "\n").encode("utf-8", "replace"))

    def observe(gid: str, hidden: bool, kind: str, name: Any = "?", value: Any = _missing,
                expected: Any = _missing, rel_tol: Any = 1e-6, abs_tol: Any = 0.0, hint: Any = "") -> None:
        got = encode_shape(value) if kind == "shape" else encode(value)
        if kind == "shape" and expected is not _missing:
            exp = encode(_tuple_of(expected))
        else:
            exp = None if expected is _missing else encode(expected)
        tol = {"rel_tol": rel_tol if _type(rel_tol) is _float else None,
               "abs_tol": abs_tol if _type(abs_tol) is _float else None}
        emit({"event": "observe", "gid": gid, "hidden": hidden, "kind": kind,
              "name": name if _type(name) is _str else "?", "value": got, "expected": exp,
              "params": tol, "hint": hint if _type(hint) is _str else ""})

    def _tuple_of(x: Any) -> Any:
        return _tuple(x) if (_type(x) is _list or _type(x) is _tuple) else x

    def fail(gid: str, hidden: bool) -> None:
        etype, evalue, _ = _exc_info()
        try:
            message = _str(evalue)[:500]
        except _Exception:
            message = ""
        emit({"event": "fail", "gid": gid, "hidden": hidden, "ename": type_name(evalue), "message": message})

    def done(gid: str) -> None:
        emit({"event": "done", "gid": gid})

    return types.SimpleNamespace(observe=observe, fail=fail, done=done)
