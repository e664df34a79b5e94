# %% [markdown]
# # 10 · Exercises: evaluation you can trust
#
# Five graded parts, after lesson 10 (12 points in all): write a task YAML that lm-evaluation-harness
# accepts, compute the harness's standard error by hand, write a paired bootstrap, a 13-gram overlap
# check, and decide from two results whether one model is better than the other — and how many more
# items would settle it. Runtime: about half a minute on a CPU (nothing here runs a model). In each answer
# cell your code replaces the lines `# YOUR CODE HERE` and `raise NotImplementedError()`; the test cell
# below it says what is wrong.

# %%
import contextlib
import io
import json
import math
import tempfile
from pathlib import Path

from course_lib.data import LABELS, data_dir, read_jsonl
from course_lib.doctor import versions_line
from course_lib.grading import check
from course_lib.models import set_threads
from course_lib.notebook import quiet_notebook
from course_lib.results import load_results

set_threads()  # one CPU thread (COURSE_THREADS): the same numbers on every machine
quiet_notebook()  # no progress bars or known notices in the saved outputs
print(versions_line())
workdir = Path(tempfile.mkdtemp())  # this notebook's files: a task folder, its data

# %% [markdown]
# ## Part 1 · A task the harness accepts (2 points)
#
# The course's classification set (lesson 01) asks which area of the standard library a docstring comes
# from. Below, its first test rows are written to `area.jsonl` in a folder of their own, each with fields
# `text`, `label` (an index into `LABELS`) and `area`. Write `area_task_yaml(data_file)`: the YAML text of a
# **multiple-choice** harness task named `area_choice`, reading that file as its `test` split
# (`dataset_path: json` and `data_files`), whose prompt is `Docstring: ` + the text + a newline +
# `Area:`, whose choices are the six area names in `LABELS` (in that order: a YAML list) and whose target
# is the row's `label`, scored with `acc` and `acc_norm` (mean, higher is better). The test writes your
# YAML beside the data, loads it with the harness's `TaskManager` and checks what the harness made of it.

# %%
rows = read_jsonl(data_dir() / "classification" / "test.jsonl")[:12]
data_file = workdir / "area_choice" / "area.jsonl"
data_file.parent.mkdir(exist_ok=True)
data_file.write_text("".join(json.dumps({k: r[k] for k in ("text", "label", "area")}) + "\n" for r in rows))
print(f"{len(rows)} rows in {data_file.name}; LABELS = {LABELS}")


# %%
def area_task_yaml(data_file: str) -> str:
    """A lm-eval multiple-choice task over data_file: which of LABELS is this docstring's area?"""
    ### BEGIN SOLUTION
    choices = "\n".join(f"  - {label}" for label in LABELS)
    return f"""task: area_choice
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data_file}
test_split: test
output_type: multiple_choice
doc_to_text: "Docstring: {{{{text}}}}\\nArea:"
doc_to_choice:
{choices}
doc_to_target: label
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
"""
    ### END SOLUTION


# %% course={"grade_id": "q1_task_yaml", "points": 2}
def load_task(yaml_text: str):
    """The harness's Task object for a YAML text written into the data's folder (lm-eval's own loader)."""
    from lm_eval.tasks import TaskManager

    (data_file.parent / "area_choice.yaml").write_text(yaml_text)
    with contextlib.redirect_stderr(io.StringIO()):
        manager = TaskManager(include_path=str(data_file.parent), include_defaults=False)
        return manager.load(["area_choice"])["tasks"]["area_choice"]


task = load_task(area_task_yaml(str(data_file)))
docs = list(task.test_docs())
check.equal("task_name", task.config.task, "area_choice", hint="the YAML's `task:` key")
check.equal("output_type", task.config.output_type, "multiple_choice",
            hint="scored by the log-likelihood of each choice: `output_type: multiple_choice`")
check.equal("items", len(docs), len(rows), hint="every row of data_file as the test split (`test_split: test`)")
check.equal("prompt", task.doc_to_text(docs[0]), f"Docstring: {rows[0]['text']}\nArea:",
            hint="doc_to_text is a Jinja template: \"Docstring: {{text}}\\nArea:\"")
### BEGIN HIDDEN TESTS
check.equal("choices", list(task.doc_to_choice(docs[3])), LABELS)
check.equal("targets", [task.doc_to_target(d) for d in docs], [r["label"] for r in rows])
check.equal("metrics", sorted(task._metric_fn_list), ["acc", "acc_norm"])
check.equal("prompt_5", task.doc_to_text(docs[5]), f"Docstring: {rows[5]['text']}\nArea:")
### END HIDDEN TESTS

# %% [markdown]
# ## Part 2 · The harness's standard error, by hand (2 points)
#
# Write `harness_stderr(scores)`: the standard error of the mean of per-item scores exactly as
# lm-evaluation-harness reports it next to every metric (lesson 10, section 3). Then use it on the
# file `course evaluate` wrote: `acc_stderr_base` is the standard error of the base model's zero-shot
# `acc` on `docstring_choice` (template off), from its items.

# %%
evaluation = load_results("evaluation")
runs = {(r["arm"], r["task"], r["num_fewshot"], r["apply_chat_template"]): r for r in evaluation["runs"]}


def harness_stderr(scores: list[float]) -> float:
    """Standard error of the mean of `scores`, as the harness computes it."""
    ### BEGIN SOLUTION
    n = len(scores)
    mean = sum(scores) / n
    return math.sqrt(sum((x - mean) ** 2 for x in scores) / (n - 1)) / math.sqrt(n)
    ### END SOLUTION


### BEGIN SOLUTION
acc_stderr_base = harness_stderr([it["acc"] for it in runs[("base", "docstring_choice", 0, False)]["items"]])
### END SOLUTION

# %% course={"grade_id": "q2_harness_stderr", "points": 2}
check.close("constant", harness_stderr([0.5, 0.5, 0.5]), 0.0, abs_tol=1e-12, hint="no spread, no error")
assert isinstance(acc_stderr_base, float) and 0 < acc_stderr_base < 0.5, "a standard error of a 0/1 mean: a float in (0, 0.5)"
### BEGIN HIDDEN TESTS
from lm_eval.api.metrics import mean_stderr as lm_eval_stderr

check.close("file", acc_stderr_base, runs[("base", "docstring_choice", 0, False)]["metrics"]["acc_stderr"], rel_tol=1e-9)
tiny_items = [it["acc_norm"] for it in runs[("course-tiny", "docstring_choice", 0, False)]["items"]]
check.close("tiny", harness_stderr(tiny_items), runs[("course-tiny", "docstring_choice", 0, False)]["metrics"]["acc_norm_stderr"],
            rel_tol=1e-9)

check.close("two_items", harness_stderr([1.0, 0.0]), 0.5, rel_tol=1e-9)
check.close("lm_eval", harness_stderr([0.2, 0.9, 0.4, 0.4, 1.0]), lm_eval_stderr([0.2, 0.9, 0.4, 0.4, 1.0]),
            rel_tol=1e-12)
check.close("ten", harness_stderr([1.0] * 3 + [0.0] * 7), math.sqrt(0.21 / 9), rel_tol=1e-12)
### END HIDDEN TESTS

# %% [markdown]
# ## Part 3 · A paired bootstrap (3 points)
#
# Write `paired_bootstrap(a, b, iters=10_000, seed=0)`: `a[i]` and `b[i]` are two models' scores on item
# i. Return `(diff, low, high)`: the mean of b − a, and the 2.5th and 97.5th percentiles of that mean over
# `iters` resamples of the **items** (n items drawn with replacement, each keeping its two scores). Use
# `numpy.random.default_rng(seed)` for the draws.

# %%
import numpy as np


def paired_bootstrap(a: list[float], b: list[float], iters: int = 10_000, seed: int = 0) -> tuple[float, float, float]:
    """(mean of b − a, 2.5th percentile, 97.5th percentile) over item resamples."""
    ### BEGIN SOLUTION
    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    idx = np.random.default_rng(seed).integers(0, len(d), size=(iters, len(d)))
    means = d[idx].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(d.mean()), float(low), float(high)
    ### END SOLUTION


# %% course={"grade_id": "q3_paired_bootstrap", "points": 3}
base = runs[("base", "docstring_gen", 0, True)]["items"]
tuned = runs[("adapter", "docstring_gen", 0, True)]["items"]
a, b = [it["rouge_l"] for it in base], [it["rouge_l"] for it in tuned]
diff, low, high = paired_bootstrap(a, b)
check.equal("floats", [isinstance(x, float) for x in (diff, low, high)], [True, True, True],
            hint="return three Python floats (float(...) of numpy's)")
assert low < diff < high, "the interval's ends are the 2.5th and 97.5th percentiles of the resampled means"
### BEGIN HIDDEN TESTS
from course_lib.evaluation import paired_bootstrap as course_bootstrap

ref = course_bootstrap(a, b)
check.close("diff", diff, ref["diff"], rel_tol=1e-9)
check.close("low", low, ref["low"], abs_tol=0.01)
check.close("high", high, ref["high"], abs_tol=0.01)
shared = [i / 40 for i in range(40)]  # hard and easy items, the same for both models
_, lo2, hi2 = paired_bootstrap(shared, [x + 0.1 for x in shared], iters=2000)
check.close("paired_width", hi2 - lo2, 0.0, abs_tol=1e-9)
### END HIDDEN TESTS

# %% [markdown]
# ## Part 4 · 13-gram overlap (2 points)
#
# Write `ngrams13(text)`: the set of 13-grams of a text as lm-eval's decontamination builds them —
# ASCII letters lower-cased, ASCII punctuation (`string.punctuation`) deleted, split on whitespace, each
# run of 13 consecutive words joined by single spaces. Then `flagged_share(test_texts, train_texts)`: the
# share of test texts with at least one 13-gram that occurs in any training text.

# %%
import string


def ngrams13(text: str) -> set[str]:
    """The 13-grams of a text, normalised as lm-eval's Janitor does."""
    ### BEGIN SOLUTION
    table = str.maketrans(string.ascii_uppercase, string.ascii_lowercase, string.punctuation)
    words = text.translate(table).split()
    return {" ".join(words[i:i + 13]) for i in range(len(words) - 12)}
    ### END SOLUTION


def flagged_share(test_texts: list[str], train_texts: list[str]) -> float:
    """Share of test texts sharing at least one 13-gram with the training texts."""
    ### BEGIN SOLUTION
    index = set().union(*(ngrams13(t) for t in train_texts))
    return sum(bool(ngrams13(t) & index) for t in test_texts) / len(test_texts)
    ### END SOLUTION


# %% course={"grade_id": "q4_ngram_overlap", "points": 2}
from course_lib.evaluation import split_texts

sentence = "Return the number of items in a sequence or collection, counted once each."
check.equal("count", len(ngrams13(sentence)), len(sentence.split()) - 12, hint="n words make n − 12 13-grams")
check.equal("short", len(ngrams13("Too short to have one.")), 0, hint="fewer than 13 words: no 13-gram")
### BEGIN HIDDEN TESTS
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    from lm_eval.decontamination.janitor import Janitor, word_ngrams
janitor = Janitor()
texts = split_texts("chat", "test")[:30]
check.equal("janitor", [ngrams13(t) == set(word_ngrams(janitor.normalize_string(t), 13)) for t in texts], [True] * 30)
check.close("share", flagged_share(split_texts("chat", "test"), split_texts("chat", "validation")), 2 / 324,
            rel_tol=1e-9)  # a pair of splits the lesson's table does not print
check.close("clean", flagged_share(split_texts("preferences", "test"), split_texts("preferences", "train")), 0.0)
### END HIDDEN TESTS

# %% [markdown]
# ## Part 5 · A decision: is the adapter better, and how many more items would settle it? (3 points)
#
# Two results of `course evaluate` on the same 48 items of `docstring_choice`, both with two examples
# in the prompt: model A is SmolLM2-135M-Instruct, model B the same with lesson 06's adapter. The metric
# is `acc_norm`. Decide at 95 % with a paired test (McNemar, `course_lib.evaluation.mcnemar`) and set
# `answer_q5` to `"A"` (A is better), `"B"` (B is better) or `"tie"` (the difference is within the
# noise). Then `more_items`: how many items **beyond these 48** a paired test would need to detect the
# observed difference at 95 % with 80 % power, from the per-item differences' sample standard deviation
# (n − 1 in the variance, as lesson 10 computes it; `course_lib.evaluation.items_needed`; if the observed
# difference is zero, set it to `None`).

# %%
from course_lib.evaluation import items_needed, mcnemar

A = runs[("base", "docstring_choice", 2, False)]
B = runs[("adapter", "docstring_choice", 2, False)]
print(f"A: acc_norm {A['metrics']['acc_norm']:.3f} ± {A['metrics']['acc_norm_stderr']:.3f} on {A['n']} items; "
      f"B: {B['metrics']['acc_norm']:.3f} ± {B['metrics']['acc_norm_stderr']:.3f} on {B['n']} items")

### BEGIN SOLUTION
a5 = [it["acc_norm"] for it in A["items"]]
b5 = [it["acc_norm"] for it in B["items"]]
test5 = mcnemar(a5, b5)
answer_q5 = "tie" if test5["p"] >= 0.05 else ("B" if test5["diff"] > 0 else "A")
d5 = [y - x for x, y in zip(a5, b5)]
mean5 = sum(d5) / len(d5)
sd5 = math.sqrt(sum((x - mean5) ** 2 for x in d5) / (len(d5) - 1))
more_items = None if mean5 == 0 else items_needed(sd5, mean5) - len(d5)
### END SOLUTION

# %% course={"grade_id": "q5_decision", "points": 3}
check.equal("kind", answer_q5 in ("A", "B", "tie"), True, hint='one of "A", "B", "tie"')
check.equal("more_items_type", more_items is None or isinstance(more_items, int), True,
            hint="a whole number of items (or None when the observed difference is zero)")
### BEGIN HIDDEN TESTS
check.equal("answer_q5", answer_q5, "tie")
check.equal("more_items", more_items, 73)
### END HIDDEN TESTS
