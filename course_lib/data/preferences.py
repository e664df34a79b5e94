"""Preference pairs from the course's own text: the right one-line docstring, or a wrong one (lesson 07).

`course build-data` calls `build_preferences`, which writes data/preferences/{train,validation,test}.jsonl
and its data card from the chat instruction set's splits. Lesson 07 measures lesson 06's model on them
(it already prefers most chosen answers) before it builds on-policy pairs instead (course_lib.tuning.pairs);
the tests of course_lib.tuning.dpo use them as small, fixed pairs.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Sequence

from course_lib.data.datasets import DATASETS, TASK_PREFIX, data_dir, format_ok, read_jsonl, write_jsonl

__all__ = ["PAIR_KINDS", "SPLIT_SIZES", "first_sentence", "make_pairs", "build_preferences", "preference_rows",
           "to_trl"]

PAIR_KINDS = ("other-function", "format")  # what the rejected completion gets wrong
SPLIT_SIZES = {"train": 64, "validation": 16, "test": 32}  # pairs kept per split (few: a CPU trains on them)


# ---------------------------------------------------------------- the pairs

def first_sentence(text: str) -> str:
    """The first sentence of a docstring paragraph (up to the first '. ' followed by a capital letter)."""
    return re.split(r"(?<=\.)\s+(?=[A-Z])", text.strip(), maxsplit=1)[0]


def _chatty(name: str, sentence: str) -> str:
    """The same content, in the form lesson 06's base model answered: a preamble line and no final full stop."""
    return f"Sure! Here is what `{name}` does:\n{sentence[0].lower()}{sentence[1:].rstrip('.')}"


def make_pairs(rows: Sequence[dict], n: int, seed: int = 0, format_share: float = 0.25) -> list[dict]:
    """n pairs from chat rows of one split: chosen = the row's own first sentence, rejected = a wrong one.

    "other-function": the first sentence of another function of the same split with about as many words
    (so that length does not decide); "format": the row's own sentence, rewritten by `_chatty`.
    """
    rng = random.Random(seed)
    items = []
    for r in (r for r in rows if r["messages"][0]["content"].startswith(TASK_PREFIX)):
        sentence = first_sentence(r["messages"][-1]["content"])
        if format_ok(sentence, max_words=20) and len(sentence.split()) >= 4:
            items.append((r["messages"][0]["content"], sentence))
    rng.shuffle(items)
    pairs = []
    for prompt, chosen in items[:n]:
        name = prompt.split("`")[1]
        if rng.random() < format_share:
            kind, rejected = "format", _chatty(name.rsplit(".", 1)[-1], chosen)
        else:
            words = len(chosen.split())
            others = [s for p, s in items if p != prompt and s != chosen and abs(len(s.split()) - words) <= 2]
            kind, rejected = "other-function", rng.choice(others)
        pairs.append({"prompt": prompt, "chosen": chosen, "rejected": rejected, "kind": kind})
    return pairs


def build_preferences(out: Path | None = None, seed: int = 0) -> dict[str, int]:
    """data/preferences/{train,validation,test}.jsonl and its data card, from the chat set's splits."""
    root = Path(out or data_dir())
    out = root / "preferences"
    counts = {}
    for split, n in SPLIT_SIZES.items():  # the chat set's splits: no prompt, and no chosen text, in two
        pairs = make_pairs(read_jsonl(root / "instructions" / "chat" / f"{split}.jsonl"), n, seed)
        write_jsonl(out / f"{split}.jsonl", pairs)
        counts[split] = len(pairs)
    table = "\n".join(f"| {s} | {n} |" for s, n in counts.items())
    (out / "README.md").write_text(
        "# Preference pairs: the right one-line docstring, or a wrong one\n\nPairs for lesson 07 (DPO), built by "
        f"`course build-data` (course_lib/data/preferences.py, `build_preferences`, seed {seed}) from data/instructions/chat. "
        "Each row has `prompt` (\"Explain what the Python function `X` does.\" and X's signature), `chosen` (the "
        "first sentence of X's real docstring), `rejected` and `kind`:\n\n- `other-function`: the first sentence "
        "of another function's docstring from the same split, at most 2 words longer or shorter (length alone "
        "does not separate them);\n- `format`: X's own sentence as a chatty two-line reply without a final full "
        "stop (it fails lesson 06's `course_lib.data.format_ok`).\n\nEvery preference is checkable: `chosen` is "
        "the documentation's own sentence (4 to 20 words, in the docstring format). Splits are the chat set's "
        "(by a hash of the prompt) and rejected sentences come from the same split: no prompt and no sentence "
        f"is in two splits.\n\n## Size\n\n| split | pairs |\n|---|---|\n{table}\n\n## Licence\n\n"
        "As data/instructions: text from the CPython standard library, PSF-2.0.\n", encoding="utf-8")
    return counts


def preference_rows(split: str, n: int | None = None) -> list[dict]:
    """The first n pairs of data/preferences/<split>.jsonl."""
    folder, fields, _ = DATASETS["preferences"]  # the one schema of a pair
    rows = read_jsonl(data_dir() / folder / f"{split}.jsonl", fields)
    return rows[:n] if n else rows


def to_trl(pair: dict) -> dict:
    """A pair in TRL's conversational preference format: prompt, chosen and rejected as message lists."""
    return {"prompt": [{"role": "user", "content": pair["prompt"]}],
            "chosen": [{"role": "assistant", "content": pair["chosen"]}],
            "rejected": [{"role": "assistant", "content": pair["rejected"]}]}
