"""The course's datasets: built from shipped Python text, loaded with `datasets` (lesson 00).

`course build-data` (course_lib.data.build) writes every JSONL file and data card under data/; lessons read them
with `load_course_dataset(name)`, which checks each row first so a malformed line gets one
clear error naming the file and the line instead of a pyarrow stack trace.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from course_lib.data.corpus import AREAS

__all__ = ["DATASETS", "LABELS", "TASK_PREFIX", "RESPONSE_MARKER", "DataFormatError", "data_dir", "load_course_dataset",
           "read_jsonl", "write_jsonl", "instruction_text", "area_text", "prompt_of", "format_ok"]

LABELS: list[str] = list(AREAS)  # label i of the classification set is LABELS[i]

# name -> (folder under data/, required fields and their types, splits)
DATASETS: dict[str, tuple[str, dict[str, type], tuple[str, ...]]] = {
    "corpus": ("corpus", {"text": str, "source": str}, ("train", "validation")),
    "classification": ("classification", {"text": str, "label": int, "area": str, "source": str},
                       ("train", "validation", "test")),
    "alpaca": ("instructions/alpaca", {"instruction": str, "input": str, "output": str},
               ("train", "validation", "test")),
    "chat": ("instructions/chat", {"messages": list}, ("train", "validation", "test")),
    "general": ("general", {"text": str, "source": str}, ("test",)),
    "preferences": ("preferences", {"prompt": str, "chosen": str, "rejected": str, "kind": str},
                    ("train", "validation", "test")),  # lesson 07, built by course_lib.data.preferences
    # lesson 10: the course's tasks in lm-evaluation-harness's format, built by course_lib.data.tasks
    "docstring_choice": ("tasks/docstring_choice", {"function": str, "signature": str, "choices": list, "label": int},
                         ("validation", "test")),
    "docstring_gen": ("tasks/docstring_gen", {"question": str, "answer": str}, ("validation", "test")),
    "verifiable": ("verifiable", {"task": str, "prompt": str, "answer": str},
                   ("train", "validation", "test")),  # lesson 09, built by course_lib.data.verifiable
}


def data_dir() -> Path:
    """data/ of this checkout, or $COURSE_DATA if set."""
    env = os.environ.get("COURSE_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "data"


# ---------------------------------------------------------------- reading, with clear errors

class DataFormatError(ValueError):
    """A data file that is not what the course expects; the message names file and line."""


def read_jsonl(path: Path, fields: dict[str, type] | None = None) -> list[dict]:
    """Read a JSONL file, checking that each line is a JSON object with the given fields."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run `course build-data` to rebuild data/.")
    rows = []
    with path.open(encoding="utf-8-sig") as f:  # -sig: a byte-order mark some editors write is skipped
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                reason = exc.msg.removesuffix(" at")  # json's "Invalid control character at" ends mid-sentence
                raise DataFormatError(f"{path}, line {lineno}: not valid JSON ({reason}, column {exc.colno}); "
                                      "fix or delete that line, or rebuild with `course build-data`.") from None
            if not isinstance(row, dict):
                raise DataFormatError(f"{path}, line {lineno}: expected a JSON object, got {type(row).__name__}.")
            for name, typ in (fields or {}).items():
                if name not in row:
                    raise DataFormatError(f"{path}, line {lineno}: missing field {name!r} "
                                          f"(each row needs {sorted(fields)}).")
                if not isinstance(row[name], typ):
                    raise DataFormatError(f"{path}, line {lineno}: field {name!r} should be "
                                          f"{typ.__name__}, got {type(row[name]).__name__}.")
            rows.append(row)
    return rows


def load_course_dataset(name: str, split: str | None = None, progress: bool = False):
    """One of the course's datasets as a `datasets.DatasetDict` (or a `Dataset` for one split).

    progress=False hides `datasets`' own progress bars for this call only (they are noise in a
    lesson's saved outputs); the library's setting is restored afterwards.
    """
    import datasets
    from datasets.utils import logging as ds_logging

    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; the course ships {sorted(DATASETS)}.")
    folder, fields, splits = DATASETS[name]
    files = {s: str(data_dir() / folder / f"{s}.jsonl") for s in splits}
    for s in ([split] if split else splits):
        if s not in files:
            raise ValueError(f"Dataset {name!r} has splits {list(splits)}, not {s!r}.")
        read_jsonl(Path(files[s]), fields)  # validate first: clear errors, not pyarrow's
    enabled_before = ds_logging.is_progress_bar_enabled()
    if not progress:
        ds_logging.disable_progress_bar()
    try:
        ds = datasets.load_dataset("json", data_files=files)
    finally:
        if enabled_before:
            ds_logging.enable_progress_bar()
    return ds[split] if split else ds


# ---------------------------------------------------------------- rows as training texts

RESPONSE_MARKER = "### Response:\n"
TASK_PREFIX = "Explain what the Python function"  # the chat rows lessons 06 and 07 train on (one task)


def instruction_text(row: dict) -> str:
    """An Alpaca row as one training text in the course's prompt format (lessons 03, 05)."""
    prompt = row["instruction"] + (f"\n\n{row['input']}" if row["input"] else "")
    return f"### Instruction:\n{prompt}\n\n{RESPONSE_MARKER}{row['output']}"


def area_text(row: dict) -> str:
    """A classification row as an instruction whose answer is the area's name (task B of lesson 05)."""
    return (f"### Instruction:\nWhich area of the standard library is this from?\n\n{row['text']}"
            f"\n\n{RESPONSE_MARKER}{row['area']}")


def prompt_of(text: str) -> str:
    """The prompt part of an `instruction_text` / `area_text`: everything up to the response."""
    return text[:text.index(RESPONSE_MARKER) + len(RESPONSE_MARKER)]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    """One JSON object per line, UTF-8 (what read_jsonl reads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def format_ok(answer: str, max_words: int = 25) -> bool:
    """The course's docstring style: one line, at most `max_words` words, ending with a full stop."""
    return "\n" not in answer and 0 < len(answer.split()) <= max_words and answer.endswith(".")
