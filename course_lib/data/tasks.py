"""The course's own evaluation tasks, in lm-evaluation-harness's format (lesson 10): data/tasks/<task>/.

    docstring_choice  multiple choice scored by log-likelihood: which of four one-line docstrings is this
                      function's (its own first sentence, and three of other functions of the same split)
    docstring_gen     generation (`generate_until`): lesson 06's task, scored by exact match, ROUGE-L and the
                      docstring format against the real docstring

`course build-data` calls `build_tasks`, which writes each task's JSONL splits (validation: the few-shot
examples; test: the scored items), its YAML and a data card; `docstring_gen` also gets `metrics.py`, the
`process_results` hook the YAML names, which scores with the course's own definitions (course_lib.metrics).
The YAML names its files relative to the course's folder, so the harness is run from there
(`lm_eval ... --include_path data/tasks`; course_lib.evaluation.harness does the same).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Sequence

from course_lib.data.datasets import TASK_PREFIX, data_dir, format_ok, read_jsonl, write_jsonl
from course_lib.data.preferences import first_sentence

__all__ = ["TASKS", "TASK_SPLITS", "N_CHOICES", "function_parts", "choice_items", "generation_items",
           "build_tasks", "task_rows"]

TASKS = ("docstring_choice", "docstring_gen")
TASK_SPLITS = ("validation", "test")  # validation: few-shot examples; test: the scored items
N_CHOICES = 4


def function_parts(question: str) -> tuple[str, str]:
    """("module.function", "def function(args)") from a chat row's question (TASK_PREFIX, name, signature)."""
    head, _, signature = question.partition("\n\n")
    return head.split("`")[1], signature.strip()


def choice_items(rows: Sequence[dict], seed: int = 0) -> list[dict]:
    """Four-way items from chat rows of one split: the function's own first sentence among three others.

    Eligible sentences are in the docstring format (4 to 20 words, one line, a full stop) and unique in the
    split; distractors are three other eligible sentences of the same split (so of 4 to 20 words too: their
    lengths differ, and `acc` and `acc_norm` can disagree), and the correct one's position is drawn too.
    """
    rng = random.Random(seed)
    items = []
    for r in rows:
        if not r["messages"][0]["content"].startswith(TASK_PREFIX):
            continue
        sentence = first_sentence(r["messages"][-1]["content"])
        if format_ok(sentence, max_words=20) and len(sentence.split()) >= 4:
            items.append((*function_parts(r["messages"][0]["content"]), sentence))
    counts: dict[str, int] = {}
    for *_, s in items:
        counts[s] = counts.get(s, 0) + 1
    items = [it for it in items if counts[it[2]] == 1]  # "Return self==value." twice would make two right answers
    sentences = [s for *_, s in items]
    out = []
    for function, signature, sentence in items:
        others = rng.sample([s for s in sentences if s != sentence], N_CHOICES - 1)
        label = rng.randrange(N_CHOICES)
        choices = others[:label] + [sentence] + others[label:]
        out.append({"function": function, "signature": signature, "choices": choices, "label": label})
    return out


def generation_items(rows: Sequence[dict]) -> list[dict]:
    """Lesson 06's task rows as {question, answer}, in the same order as `course_lib.tuning.sft.task_rows`."""
    return [{"question": r["messages"][0]["content"], "answer": r["messages"][-1]["content"]}
            for r in rows if r["messages"][0]["content"].startswith(TASK_PREFIX)]


_HEADER = ("# lm-evaluation-harness task of lesson 10, written by `course build-data` (course_lib/data/tasks.py).\n"
           "# Run from the course's folder, e.g.\n"
           "#   lm_eval --model hf --model_args pretrained=data/models/smollm2-135m-instruct,dtype=float32 \\\n"
           "#     --include_path data/tasks --tasks {task} --device cpu --batch_size 8\n")


def _data_files(task: str) -> str:
    return "".join(f"    {s}: data/tasks/{task}/{s}.jsonl\n" for s in TASK_SPLITS)


_YAML = {
    "docstring_choice": """task: docstring_choice
dataset_path: json
dataset_kwargs:
  data_files:
{files}test_split: test
fewshot_split: validation
fewshot_config:
  sampler: first_n
output_type: multiple_choice
doc_to_text: "Function `{{{{function}}}}`\\n{{{{signature}}}}\\nDocstring:"
doc_to_choice: choices
doc_to_target: label
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
""",
    "docstring_gen": """task: docstring_gen
dataset_path: json
dataset_kwargs:
  data_files:
{files}test_split: test
fewshot_split: validation
fewshot_config:
  sampler: first_n
output_type: generate_until
doc_to_text: "{{{{question}}}}"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: []
  max_gen_toks: 24
  do_sample: false
process_results: !function metrics.process_results
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
  - metric: rouge_l
    aggregation: mean
    higher_is_better: true
  - metric: format_ok
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
""",
}

_METRICS_PY = '''"""process_results of docstring_gen (data/tasks/docstring_gen.yaml): the course's own scores of one answer."""

from course_lib.evaluation.harness import score_answer


def process_results(doc, results):
    """{exact_match, rouge_l, format_ok} of the generated answer (results[0]) against doc["answer"]."""
    return score_answer(results[0], doc["answer"])
'''

_CARD = """# The course's evaluation tasks (lm-evaluation-harness format)

Two tasks for lesson 10, built by `course build-data` (course_lib/data/tasks.py, `build_tasks`, seed {seed}) from
data/instructions/chat: the rows whose question starts "{prefix}". Each folder holds the task's YAML,
which EleutherAI's lm-evaluation-harness reads as it reads its own tasks (`--include_path data/tasks`),
and two splits: `validation` (the few-shot examples, taken in order: `sampler: first_n`) and `test` (the
scored items). The YAML names the files relative to the course's folder: run the harness from there.

- **docstring_choice** (`output_type: multiple_choice`): fields `function`, `signature`, `choices` (four
  sentences), `label` (index of the right one). The right choice is the first sentence of the function's own
  docstring; the three others are first sentences of other functions' docstrings from the same split, in a
  drawn order. Every sentence is in the docstring format (4 to 20 words, one line, a full
  stop) and unique within its split. Scored by the log-likelihood of each choice after the prompt: `acc`
  (sum of log-probabilities) and `acc_norm` (divided by the choice's length in characters).
- **docstring_gen** (`output_type: generate_until`): fields `question`, `answer` — lesson 06's task rows in
  the same order (`course_lib.tuning.sft.task_rows`), so its first 8 test items are the ones `course sft`
  answered. Greedy, at most 24 new tokens, stopped only by the end of turn; scored by `metrics.py` with the
  course's definitions: exact match, ROUGE-L (F) and the docstring format (`course_lib.data.format_ok`).

## Size

| task | split | items |
|---|---|---|
{table}

## Contamination

The chat set is split by a hash of the prompt, not by source file: these functions' docstrings are in
course-tiny's pre-training corpus when their file is a `train` file (data/corpus). Lesson 10 measures the
13-gram overlap of every test split with every training split.

## Licence

As data/instructions: text from the CPython standard library, PSF-2.0.
"""


def build_tasks(out: Path | None = None, seed: int = 0) -> dict[str, int]:
    """data/tasks/<task>/{validation,test}.jsonl, <task>.yaml, docstring_gen's metrics.py and the card."""
    root = Path(out or data_dir())
    counts, table = {}, []
    for split in TASK_SPLITS:
        rows = read_jsonl(root / "instructions" / "chat" / f"{split}.jsonl")
        for task, items in (("docstring_choice", choice_items(rows, seed)), ("docstring_gen", generation_items(rows))):
            write_jsonl(root / "tasks" / task / f"{split}.jsonl", items)
            counts[f"{task}/{split}"] = len(items)
            table.append(f"| {task} | {split} | {len(items)} |")
    for task in TASKS:
        yaml = _HEADER.format(task=task) + _YAML[task].format(files=_data_files(task))
        (root / "tasks" / task / f"{task}.yaml").write_text(yaml, encoding="utf-8")
    (root / "tasks" / "docstring_gen" / "metrics.py").write_text(_METRICS_PY, encoding="utf-8")
    (root / "tasks" / "README.md").write_text(
        _CARD.format(seed=seed, prefix=TASK_PREFIX, table="\n".join(sorted(table))), encoding="utf-8")
    return counts


def task_rows(task: str, split: str = "test") -> list[dict]:
    """The items of data/tasks/<task>/<split>.jsonl (what the harness scores)."""
    if task not in TASKS:
        raise ValueError(f"Unknown task {task!r}; the course's tasks are {TASKS}.")
    return read_jsonl(data_dir() / "tasks" / task / f"{split}.jsonl")
