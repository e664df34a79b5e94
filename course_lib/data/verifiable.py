"""Tasks whose answers a program checks: lesson 09's candidates for reinforcement learning (RLVR).

`course build-data` calls `build_verifiable`, which writes data/verifiable/{train,validation,test}.jsonl and its
data card. Every row is {"task", "prompt", "answer"}: a question, and the one integer a checker accepts.

    times-table      "What is 7 * 13?"  both factors 2..15          (generated)
    two-digit-sum    "What is 47 + 85?" both terms 10..99           (generated, a seeded sample)
    parameter-count  "How many parameters does this Python function take?" and a real signature from the
                     instruction set (data/instructions/alpaca), answered by Python's own `ast`

Splits: a generated pair and its mirror (7 * 13, 13 * 7) always share a split (a hash of the unordered pair),
so no fact is asked in training and tested in its other order; signatures keep the instruction set's splits.
"""

from __future__ import annotations

import ast
import hashlib
import random
from collections import Counter
from pathlib import Path

from course_lib.data.datasets import DATASETS, data_dir, read_jsonl, write_jsonl

__all__ = ["VERIFIABLE_TASKS", "TABLE_RANGE", "SPLITS", "signature_parameters", "times_table_rows", "sum_rows",
           "parameter_count_rows", "build_verifiable", "verifiable_rows"]

VERIFIABLE_TASKS = ("times-table", "two-digit-sum", "parameter-count")
TABLE_RANGE = (2, 15)  # both factors of the times table
SPLITS = {"train": 60, "validation": 10, "test": 30}  # percent of the unordered pairs (by a hash)
SUM_ROWS = {"train": 240, "validation": 40, "test": 120}  # two-digit sums kept per split (of 4,095 pairs)


def _split(key: str) -> str:
    bucket = int(hashlib.sha256(key.encode("utf-8")).hexdigest(), 16) % 100
    return "train" if bucket < SPLITS["train"] else "validation" if bucket < 100 - SPLITS["test"] else "test"


def signature_parameters(signature: str) -> list[str]:
    """The parameter names of `def f(a, b=1, *args, c, **kw)`, in order, read with `ast` (the bare `*` is none)."""
    args = ast.parse(signature.rstrip(":") + ": pass").body[0].args
    names = [a.arg for a in args.posonlyargs + args.args]
    names += [args.vararg.arg] if args.vararg else []
    names += [a.arg for a in args.kwonlyargs]
    return names + ([args.kwarg.arg] if args.kwarg else [])


def times_table_rows(seed: int = 0) -> dict[str, list[dict]]:
    """Every ordered pair of factors in TABLE_RANGE, split by its unordered pair, shuffled (seeded)."""
    lo, hi = TABLE_RANGE
    out: dict[str, list[dict]] = {s: [] for s in SPLITS}
    for a in range(lo, hi + 1):
        for b in range(lo, hi + 1):
            out[_split(f"times:{min(a, b)}*{max(a, b)}")].append(
                {"task": "times-table", "prompt": f"What is {a} * {b}?", "answer": str(a * b)})
    rng = random.Random(seed)
    for rows in out.values():
        rng.shuffle(rows)
    return out


def sum_rows(seed: int = 0) -> dict[str, list[dict]]:
    """Two-digit sums: each unordered pair of terms in 10..99 is in one split; a seeded sample per split."""
    out: dict[str, list[dict]] = {s: [] for s in SPLITS}
    for a in range(10, 100):
        for b in range(a, 100):
            out[_split(f"sum:{a}+{b}")].append((a, b))
    rng = random.Random(seed)
    rows = {}
    for split, pairs in out.items():
        picked = rng.sample(pairs, SUM_ROWS[split])
        rows[split] = [{"task": "two-digit-sum", "prompt": f"What is {a} + {b}?" if rng.random() < 0.5
                        else f"What is {b} + {a}?", "answer": str(a + b)} for a, b in picked]
    return rows


def parameter_count_rows(root: Path) -> dict[str, list[dict]]:
    """The instruction set's functions (their signatures as written), one row per distinct signature and split."""
    folder = DATASETS["alpaca"][0]
    out = {}
    for split in SPLITS:
        signatures = dict.fromkeys(r["input"] for r in read_jsonl(root / folder / f"{split}.jsonl")
                                   if r["input"].startswith(("def ", "async def ")))
        out[split] = [{"task": "parameter-count",
                       "prompt": f"How many parameters does this Python function take?\n\n{s}",
                       "answer": str(len(signature_parameters(s)))} for s in signatures]
    return out


def build_verifiable(out: Path | None = None, seed: int = 0) -> dict[str, int]:
    """data/verifiable/{train,validation,test}.jsonl (every task's rows) and the data card."""
    root = Path(out or data_dir())
    parts = [times_table_rows(seed), sum_rows(seed), parameter_count_rows(root)]
    counts, by_task = {}, {}
    for split in SPLITS:
        rows = [r for part in parts for r in part[split]]
        write_jsonl(root / "verifiable" / f"{split}.jsonl", rows)
        counts[split] = len(rows)
        by_task[split] = Counter(r["task"] for r in rows)
    table = "\n".join(f"| {s} | " + " | ".join(str(by_task[s][t]) for t in VERIFIABLE_TASKS) + " |" for s in SPLITS)
    answers = Counter(r["answer"] for r in parts[2]["test"])
    (root / "verifiable" / "README.md").write_text(
        "# Verifiable tasks: questions whose answer a program checks\n\nCandidate tasks for lesson 09 (reinforcement "
        "learning with verifiable rewards), built by `course build-data` (course_lib/data/verifiable.py, "
        f"`build_verifiable`, seed {seed}). Each row has `task`, `prompt` (the user's message) and `answer` (the one "
        "integer the checker accepts, as text):\n\n"
        f"- `times-table`: \"What is a * b?\" for every ordered pair of factors {TABLE_RANGE[0]}..{TABLE_RANGE[1]} "
        "(generated);\n- `two-digit-sum`: \"What is a + b?\" for a seeded sample of pairs of terms 10..99 "
        "(generated);\n- `parameter-count`: \"How many parameters does this Python function take?\" and a "
        "signature from data/instructions/alpaca (real standard-library functions); the answer counts the names in "
        "the parentheses (`self`, `*args` and `**kwargs` included, a bare `*` or `/` not), read with Python's `ast` "
        f"(`signature_parameters`). On the test split the most common answer, {answers.most_common(1)[0][0]}, is "
        f"the answer of {answers.most_common(1)[0][1]} of {len(parts[2]['test'])} rows: the accuracy of a constant "
        "reply.\n\n## Splits\n\nA generated pair and its mirror (a * b and b * a) share a split, chosen by a SHA-256 "
        f"hash of the unordered pair ({SPLITS['train']} / {SPLITS['validation']} / {SPLITS['test']} % of the pairs "
        "to train / validation / test), so no fact is trained in one order and tested in the other. Signatures keep "
        "the instruction set's splits (by a hash of the prompt there); a signature is kept once per split.\n\n"
        "## Size\n\n| split | " + " | ".join(VERIFIABLE_TASKS) + " |\n|---|---|---|---|\n" + table + "\n\n## Licence\n\n"
        "The generated questions are the course's own; the signatures are text from the CPython standard library "
        "(PSF-2.0), as data/instructions.\n", encoding="utf-8")
    return counts


def verifiable_rows(task: str, split: str, n: int | None = None) -> list[dict]:
    """The first n rows of one task in data/verifiable/<split>.jsonl."""
    if task not in VERIFIABLE_TASKS:
        raise ValueError(f"Unknown task {task!r}; data/verifiable holds {VERIFIABLE_TASKS}.")
    folder, fields, _ = DATASETS["verifiable"]
    rows = [r for r in read_jsonl(data_dir() / folder / f"{split}.jsonl", fields) if r["task"] == task]
    return rows[:n] if n else rows
