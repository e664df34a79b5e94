"""The course's raw text: English prose that ships with every CPython install (lesson 00).

Two sources, both read from the running interpreter's standard library, never from a hub:
- docstrings of stdlib modules, classes and functions (parsed with `ast`, nothing imported);
- the documentation topics in `pydoc_data.topics` (the text `help("FOR")` shows).

Every document carries its origin, so splits can be made *by source file* and no text can
leak from pre-training into a held-out set.
"""

from __future__ import annotations

import ast
import hashlib
import re
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Doc", "stdlib_docstrings", "pydoc_topics", "split_of", "AREAS", "area_of", "clean"]

# Folders that are tests, demos or vendored code rather than library documentation.
_SKIP_PARTS = {"test", "tests", "idlelib", "turtledemo", "site-packages", "__phello__", "lib2to3"}


@dataclass(frozen=True)
class Doc:
    """One piece of documentation text and where it came from."""

    source: str  # e.g. "Lib/asyncio/queues.py" or "pydoc_data/topics:for"
    module: str  # dotted module name, e.g. "asyncio.queues"; "pydoc_data" for topics
    qualname: str  # "Queue.put", "" for a module docstring, the topic name for topics
    kind: str  # "module" | "class" | "function" | "topic"
    signature: str  # "def put(self, item)" for functions, "" otherwise
    text: str


def clean(text: str) -> str:
    """Normalise whitespace: dedented paragraphs, no trailing spaces, no tabs."""
    text = text.replace("\t", "    ").replace("\r\n", "\n")
    lines = [line.rstrip() for line in text.strip().split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))


def _stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _signature(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    args = ast.unparse(node.args)
    prefix = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
    return f"{prefix} {node.name}({args})"


def stdlib_docstrings(min_chars: int = 40) -> list[Doc]:
    """All docstrings of at least `min_chars` characters in the stdlib, in a fixed order."""
    root = _stdlib_root()
    files = sorted(p for p in root.rglob("*.py") if not (_SKIP_PARTS & set(p.relative_to(root).parts)))
    docs: list[Doc] = []
    for path in files:
        rel = path.relative_to(root)
        module = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        # Walk with qualified names so "Queue.put" and "LifoQueue.put" stay distinct.
        stack: list[tuple[ast.AST, str]] = [(tree, "")]
        while stack:
            node, qual = stack.pop(0)
            doc = ast.get_docstring(node, clean=True)
            if isinstance(node, ast.Module):
                kind, sig = "module", ""
            elif isinstance(node, ast.ClassDef):
                kind, sig = "class", ""
            else:
                kind, sig = "function", _signature(node)  # type: ignore[arg-type]
            if doc and len(doc) >= min_chars:
                docs.append(Doc(f"Lib/{rel.as_posix()}", module, qual, kind, sig, clean(doc)))
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    stack.append((child, f"{qual}.{child.name}" if qual else child.name))
    return docs


def pydoc_topics() -> list[Doc]:
    """The documentation topics shipped in pydoc_data (Python's reference manual, as text)."""
    from pydoc_data.topics import topics

    return [Doc(f"pydoc_data/topics:{name}", "pydoc_data", name, "topic", "", clean(text))
            for name, text in sorted(topics.items())]


def split_of(source: str, validation: int = 10, heldout: int = 10) -> str:
    """Which split a *source file* belongs to: 'train', 'validation' or 'heldout'.

    A stable hash of the file name decides, so every docstring of one file lands in the same
    split and the assignment does not depend on the Python version or on dict order.
    """
    bucket = int(hashlib.sha256(source.encode("utf-8")).hexdigest(), 16) % 100
    if bucket < validation:
        return "validation"
    if bucket < validation + heldout:
        return "heldout"
    return "train"


# Labels of the classification set: which area of the standard library a docstring is from.
AREAS: dict[str, tuple[str, ...]] = {
    "text": ("string", "re", "textwrap", "difflib", "codecs", "encodings", "unicodedata", "html",
             "xml", "json", "csv", "configparser", "tomllib", "gettext", "locale", "base64",
             "quopri", "shlex", "stringprep", "sre_parse", "sre_compile", "_markupbase"),
    "files": ("os", "pathlib", "shutil", "glob", "fnmatch", "tempfile", "io", "_pyio", "stat",
              "filecmp", "fileinput", "zipfile", "tarfile", "gzip", "bz2", "lzma", "zipimport",
              "posixpath", "ntpath", "genericpath", "mailcap", "netrc", "shelve", "dbm"),
    "network": ("socket", "ssl", "http", "urllib", "email", "smtplib", "imaplib", "poplib",
                "ftplib", "mailbox", "mimetypes", "ipaddress", "xmlrpc", "socketserver",
                "wsgiref", "selectors", "nntplib", "telnetlib", "cgi", "uuid"),
    "concurrency": ("threading", "multiprocessing", "concurrent", "asyncio", "queue", "sched",
                    "subprocess", "signal", "_threading_local"),
    "numbers": ("decimal", "_pydecimal", "fractions", "numbers", "random", "statistics",
                "collections", "_collections_abc", "heapq", "bisect", "enum", "dataclasses",
                "copy", "operator", "functools", "itertools", "datetime", "_pydatetime",
                "calendar", "colorsys"),
    "devtools": ("inspect", "ast", "dis", "tokenize", "pdb", "bdb", "trace", "traceback",
                 "unittest", "doctest", "pydoc", "importlib", "typing", "warnings", "logging",
                 "argparse", "optparse", "symtable", "pickletools", "profile", "cProfile",
                 "pstats", "timeit", "code", "codeop", "cmd", "tabnanny", "py_compile",
                 "compileall", "modulefinder", "pyclbr"),
}


def area_of(module: str) -> str | None:
    """The AREAS label of a dotted module name, or None if it belongs to no area."""
    top = module.split(".")[0]
    for area, tops in AREAS.items():
        if top in tops:
            return area
    return None


def python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
