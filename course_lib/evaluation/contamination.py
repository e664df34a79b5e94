"""Is the test set in the training data? 13-gram overlap, as lm-eval's decontamination and GPT-3 check it (lesson 10).

A text is lower-cased (ASCII letters), stripped of punctuation and split on whitespace; its n-grams are
the runs of n consecutive words (lm-eval `Janitor.normalize_string` and `janitor.word_ngrams`, n = 13 as in
Brown et al. 2020). A test row is flagged when any of its n-grams occurs anywhere in a training split. A
row shorter than n words has no n-gram and is never flagged that way; `contaminated(..., short_rows=True)`
also flags one whose whole text occurs in the training text (the course's option, for short items).

    split_texts("instructions", "test")   the text of each row of a split under data/ (what a model reads)
    overlap_table()                        every training split against every test split: the share flagged
"""

from __future__ import annotations

import string
from typing import Iterable, Sequence

from course_lib.data.datasets import DATASETS, data_dir, read_jsonl

__all__ = ["NGRAM", "normalize", "ngrams", "ngram_set", "contaminated", "split_texts", "TRAIN_SPLITS",
           "TEST_SPLITS", "overlap_table"]

NGRAM = 13
_TABLE = str.maketrans(string.ascii_lowercase + string.ascii_uppercase, string.ascii_lowercase * 2,
                       string.punctuation)  # upper -> lower, punctuation deleted (lm-eval's Janitor)


def normalize(text: str) -> str:
    """ASCII letters lower-cased, ASCII punctuation deleted; everything else (whitespace, digits) kept."""
    return text.translate(_TABLE)


def ngrams(text: str, n: int = NGRAM) -> set[str]:
    """The n-grams of a text's normalized words, each as the words joined by one space."""
    words = normalize(text).split()
    return {" ".join(words[i:i + n]) for i in range(len(words) - n + 1)}


def ngram_set(texts: Iterable[str], n: int = NGRAM) -> set[str]:
    """Every n-gram of every text: a training split's index."""
    out: set[str] = set()
    for t in texts:
        out |= ngrams(t, n)
    return out


def contaminated(test_texts: Sequence[str], train_index: set[str], n: int = NGRAM, short_rows: bool = False,
                 train_normalized: str | None = None) -> list[bool]:
    """For each test text: does any of its n-grams occur in the training index?

    short_rows=True also flags a text shorter than n words whose whole normalized text occurs in the
    training text (`train_normalized`: the training split's normalized words joined by spaces).
    """
    flags = []
    for t in test_texts:
        grams = ngrams(t, n)
        if grams:
            flags.append(not grams.isdisjoint(train_index))
        elif short_rows and train_normalized is not None:
            words = " ".join(normalize(t).split())
            flags.append(bool(words) and f" {words} " in f" {train_normalized} ")
        else:
            flags.append(False)
    return flags


def _row_text(name: str, row: dict) -> str:
    """What a model reads of a row: every text field of it, prompt and answer together."""
    if name == "chat":
        return "\n".join(m["content"] for m in row["messages"])
    if name == "docstring_choice":
        return "\n".join([row["function"], row["signature"], row["choices"][row["label"]]])
    fields = [k for k, t in DATASETS[name][1].items() if t is str and k not in ("source", "area", "kind")]
    return "\n".join(row[k] for k in fields)


def split_texts(name: str, split: str) -> list[str]:
    """The text of each row of a dataset's split (course_lib.data.DATASETS): prompt and answer together."""
    folder, fields, splits = DATASETS[name]
    if split not in splits:
        raise ValueError(f"dataset {name!r} has splits {list(splits)}, not {split!r}.")
    return [_row_text(name, r) for r in read_jsonl(data_dir() / folder / f"{split}.jsonl", fields)]


# Which splits trained something, and which are scored (validation too: lessons 01-05 report on it); chat
# holds alpaca's rows in another form, so one of them stands for both.
TRAIN_SPLITS = [("corpus", "train"), ("classification", "train"), ("chat", "train"), ("preferences", "train")]
TEST_SPLITS = [("classification", "validation"), ("classification", "test"), ("chat", "validation"), ("chat", "test"),
               ("general", "test"), ("preferences", "test"), ("docstring_choice", "test"), ("docstring_gen", "test")]


def overlap_table(train_splits: Sequence[tuple[str, str]] = tuple(TRAIN_SPLITS),
                  test_splits: Sequence[tuple[str, str]] = tuple(TEST_SPLITS), n: int = NGRAM) -> list[dict]:
    """Every training split against every test split: rows, rows flagged, and the share flagged.

    "short": rows under n words, which the n-gram rule cannot flag; "short_contained": how many of them
    occur whole in the training text (GPT-3's rule for short examples, Brown et al. 2020, appendix C).
    """
    texts_of = {f"{d}/{s}": split_texts(d, s) for d, s in train_splits}
    indexes = {name: ngram_set(texts, n) for name, texts in texts_of.items()}
    tests = {f"{d}/{s}": split_texts(d, s) for d, s in test_splits}
    table = []
    for train, index in indexes.items():
        joined = " ".join(" ".join(normalize(t).split()) for t in texts_of[train])
        for test, texts in tests.items():
            flags = contaminated(texts, index, n)
            short = [t for t in texts if not ngrams(t, n)]
            contained = contaminated(short, index, n, short_rows=True, train_normalized=joined)
            table.append({"train": train, "test": test, "rows": len(texts), "flagged": sum(flags),
                          "share": sum(flags) / len(texts), "short": len(short), "short_contained": sum(contained)})
    order = {name: i for i, name in enumerate(tests)}
    return sorted(table, key=lambda r: order[r["test"]])  # grouped by test split, training splits in order
