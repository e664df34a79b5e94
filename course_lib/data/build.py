"""`course build-data`: every dataset and data card under data/, cut from Python's own text (lesson 00).

The build is seeded and splits by a hash of each source file, so it repeats exactly; lesson 07's
preference pairs and lesson 10's harness tasks are cut last, from the chat set just written
(course_lib.data.preferences, course_lib.data.tasks), then lesson 09's verifiable tasks, whose
signatures come from the alpaca set (course_lib.data.verifiable).
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from course_lib.data.corpus import AREAS, Doc, area_of, pydoc_topics, python_version, split_of, stdlib_docstrings
from course_lib.data.datasets import LABELS, data_dir, write_jsonl
from course_lib.data.preferences import build_preferences
from course_lib.data.tasks import build_tasks
from course_lib.data.verifiable import build_verifiable

__all__ = ["DataConfig", "build_all", "alpaca_to_chat"]


@dataclass
class DataConfig:
    """How `course build-data` cuts the shipped text into datasets."""

    seed: int = field(default=0, metadata={"help": "shuffling and capping are seeded: the build is reproducible"})
    per_class: int = field(default=450, metadata={"help": "classification examples kept per label (balanced)"})
    max_example_chars: int = field(default=600, metadata={"help": "longer classification / instruction texts "
                                                                  "are dropped"})
    max_instructions: int = field(default=3000, metadata={"help": "size of the instruction set before splitting"})
    passage_chars: int = field(default=700, metadata={"help": "general held-out text is packed into passages "
                                                              "of about this many characters"})


def _hash_bucket(text: str, mod: int = 100) -> int:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest(), 16) % mod


def _first_paragraph(text: str) -> str:
    return " ".join(text.split("\n\n")[0].split())


def _pack_passages(docs: list[Doc], size: int) -> list[dict]:
    """Pack paragraphs of held-out documents into passages of roughly `size` characters."""
    out = []
    for doc in docs:
        buf = ""
        for para in doc.text.split("\n\n"):
            para = " ".join(para.split())
            if buf and len(buf) + len(para) > size:
                out.append({"text": buf, "source": doc.source})
                buf = ""
            buf = f"{buf}\n\n{para}" if buf else para
        if len(buf) >= 80:
            out.append({"text": buf, "source": doc.source})
    return out


def build_all(config: DataConfig | None = None, out: Path | None = None) -> dict[str, dict[str, int]]:
    """Build every dataset and data card under data/; returns the row count of each split.

    About 90 lines on purpose: every set is cut from the same parsed documents with one seeded generator,
    in an order that is part of the result (a split moved earlier would draw other rows); the pieces
    that stand alone (_pack_passages, alpaca_to_chat, _write_cards, build_preferences) are apart.
    """
    config = config or DataConfig()
    out = out or data_dir()
    rng = random.Random(config.seed)
    docs = stdlib_docstrings() + pydoc_topics()
    by_split: dict[str, list[Doc]] = defaultdict(list)
    for d in docs:
        by_split[split_of(d.source)].append(d)
    counts: dict[str, dict[str, int]] = {}

    # The same docstring can stand in two files ("Return self==value."): a text seen in an
    # earlier split is dropped from the later ones, so no text is in two splits.
    seen_texts: set[str] = set()
    for s in ("train", "validation", "heldout"):
        by_split[s] = [d for d in by_split[s] if d.text not in seen_texts]
        seen_texts |= {d.text for d in by_split[s]}

    # (0) pre-training corpus: whole documents of train and validation files.
    for s in ("train", "validation"):
        rows = [{"text": d.text, "source": d.source} for d in by_split[s]]
        write_jsonl(out / "corpus" / f"{s}.jsonl", rows)
        counts.setdefault("corpus", {})[s] = len(rows)

    # (c) general held-out text: files course-tiny never saw, packed into passages.
    general = _pack_passages(by_split["heldout"], config.passage_chars)
    write_jsonl(out / "general" / "test.jsonl", general)
    counts["general"] = {"test": len(general)}

    # (a) classification: which stdlib area a class/function docstring comes from.
    seen: set[str] = set()
    per_label: dict[str, list[dict]] = defaultdict(list)
    for d in by_split["train"] + by_split["validation"]:
        area = area_of(d.module)
        text = _first_paragraph(d.text)
        if d.kind in ("class", "function") and area and 30 <= len(text) <= config.max_example_chars \
                and text not in seen:
            seen.add(text)
            per_label[area].append({"text": text, "label": LABELS.index(area), "area": area,
                                    "source": f"{d.source}:{d.qualname}"})
    cls_rows = []
    for area in LABELS:
        rows = per_label[area]
        rng.shuffle(rows)
        cls_rows += rows[: config.per_class]
    splits = {"train": [], "validation": [], "test": []}
    for row in cls_rows:  # 60 / 20 / 20 by a hash of the text: stable and disjoint
        b = _hash_bucket(row["text"])
        splits["train" if b < 60 else "validation" if b < 80 else "test"].append(row)
    for s, rows in splits.items():
        rng.shuffle(rows)
        write_jsonl(out / "classification" / f"{s}.jsonl", rows)
    counts["classification"] = {s: len(r) for s, r in splits.items()}

    # (b) instructions from real documentation, in Alpaca form and chat form.
    instr = []
    for d in by_split["train"] + by_split["validation"]:
        answer = _first_paragraph(d.text)
        if not 40 <= len(answer) <= config.max_example_chars:
            continue
        name = f"{d.module}.{d.qualname}" if d.qualname else d.module
        if d.kind == "function":
            instr.append({"instruction": f"Explain what the Python function `{name}` does.",
                          "input": d.signature, "output": answer})
        elif d.kind == "class":
            instr.append({"instruction": f"What is the class `{name}` in Python's standard library for?",
                          "input": "", "output": answer})
        elif d.kind == "module":
            instr.append({"instruction": f"Describe the Python module `{name}` in one paragraph.",
                          "input": "", "output": answer})
        elif d.kind == "topic":
            instr.append({"instruction": "Summarise this topic of the Python reference manual.",
                          "input": d.qualname, "output": answer})
    uniq = {r["instruction"] + "\n" + r["input"]: r for r in instr}  # one row per prompt
    instr = list(uniq.values())
    rng.shuffle(instr)
    instr = instr[: config.max_instructions]
    isplits = {"train": [], "validation": [], "test": []}
    for row in instr:
        b = _hash_bucket(row["instruction"] + row["input"])
        isplits["train" if b < 80 else "validation" if b < 90 else "test"].append(row)
    for s, rows in isplits.items():
        write_jsonl(out / "instructions" / "alpaca" / f"{s}.jsonl", rows)
        write_jsonl(out / "instructions" / "chat" / f"{s}.jsonl", [alpaca_to_chat(r) for r in rows])
    counts["alpaca"] = counts["chat"] = {s: len(r) for s, r in isplits.items()}

    _write_cards(out, counts, config, Counter(r["area"] for r in cls_rows))
    counts["preferences"] = build_preferences(out, config.seed)  # lesson 07's pairs, cut from the chat set just written
    counts["tasks"] = build_tasks(out, config.seed)  # lesson 10's harness tasks, from the same chat set
    counts["verifiable"] = build_verifiable(out, config.seed)  # lesson 09's tasks; signatures from the alpaca set
    return counts


def alpaca_to_chat(row: dict) -> dict:
    """Alpaca (instruction, input, output) -> chat messages with roles."""
    user = row["instruction"] + (f"\n\n{row['input']}" if row["input"] else "")
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": row["output"]}]}


_LICENCE = ("The text is taken from the CPython standard library and its documentation "
            "(`pydoc_data`), Copyright © Python Software Foundation, distributed under the "
            "PSF License Agreement (PSF-2.0); documentation code samples are under the Zero-Clause "
            "BSD licence. This derived dataset is shared under the same terms.")


def _write_cards(out: Path, counts: dict, config: DataConfig, by_area: Counter) -> None:
    common = (f"Built by `course build-data` (course_lib/data/build.py, seed {config.seed}) from the "
              f"standard library of Python {python_version()}: docstrings parsed with `ast` "
              "(tests, demos and vendored folders excluded) and the topics in `pydoc_data.topics`.\n\n"
              "Splits are made **by source file** with a SHA-256 hash of its path: 80 % of files are "
              "`train`, 10 % `validation`, 10 % `heldout`. Held-out files are used only by the general "
              "text set below; course-tiny never saw them.\n\n"
              f"## Licence\n\n{_LICENCE}\n")
    sizes = lambda name: "\n".join(f"| {s} | {n} |" for s, n in counts[name].items())  # noqa: E731
    cards = {
        "corpus": ("Pre-training corpus of course-tiny",
                   "Whole docstrings and documentation topics of the `train` and `validation` files. "
                   "`course pretrain` trains the tokenizer and course-tiny on `train` and reports "
                   "perplexity on `validation`.\n\nFields: `text`, `source` (file and, for topics, name)."),
        "classification": ("Which area of the standard library is this docstring from?",
                           "Text classification for lesson 01. Each row is the first paragraph of a class or "
                           "function docstring from a `train` or `validation` file; `label` is its area "
                           f"(index into {LABELS}), `area` the name. Areas are lists of top-level modules in "
                           "`course_lib.data.corpus.AREAS`. Balanced by capping each area at "
                           f"{config.per_class} examples (counts: {dict(sorted(by_area.items()))}); "
                           "deduplicated; split 60/20/20 by a hash of the text, so no text is in two splits. "
                           "course-tiny saw these texts, without labels, during pre-training — as a real "
                           "pretrained model has seen text like its fine-tuning data."),
        "instructions": ("Instruction set, in Alpaca form and in chat form",
                         "Prompts built from real documentation: for a function, \"Explain what the Python "
                         "function `X` does.\" with its signature as `input`; for a class, a module or a "
                         "reference-manual topic, a similar instruction. `output` is the first paragraph of "
                         "the real docstring or topic. One row per prompt; split 80/10/10 by a hash of the "
                         "prompt. `alpaca/` has fields `instruction`, `input`, `output`; `chat/` holds the "
                         "same rows as `messages` with roles `user` and `assistant`."),
        "general": ("General held-out text, for measuring forgetting",
                    "Passages (about "
                    f"{config.passage_chars} characters, packed paragraph by paragraph) from the `heldout` "
                    "files only: disjoint from course-tiny's pre-training data, from the classification set "
                    "and from the instruction set. Lesson 05 measures perplexity on it before and after "
                    "fine-tuning.\n\nFields: `text`, `source`."),
    }
    for folder, (title, body) in cards.items():
        name = "alpaca" if folder == "instructions" else folder
        table = f"| split | rows |\n|---|---|\n{sizes(name)}"
        text = f"# {title}\n\n{body}\n\n## Size\n\n{table}\n\n## How it was built\n\n{common}"
        (out / folder / "README.md").write_text(text, encoding="utf-8")
