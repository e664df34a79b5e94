# %% [markdown]
# # Exercises 01 — Transfer learning
#
# Work through `lessons/01_transfer_learning.ipynb` first. Each part has an answer cell (replace its
# `# YOUR CODE HERE` and `raise NotImplementedError()` lines with your code) and a test cell that checks it; run the test cell
# to see whether you are right. About 30 s to run on a 2-core CPU.

# %%
import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

from course_lib.doctor import versions_line
from course_lib.models import set_threads

transformers.logging.set_verbosity_error()
set_threads()  # one CPU thread (COURSE_THREADS): the same numbers on every machine
print(versions_line())


def tiny_classifier(num_labels: int = 3, layers: int = 3) -> LlamaForSequenceClassification:
    """A Llama classifier small enough to build instantly (width 16), for checking your helpers."""
    torch.manual_seed(0)
    return LlamaForSequenceClassification(LlamaConfig(
        vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=layers, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=32, pad_token_id=0, num_labels=num_labels))


# %% [markdown]
# ## Part 1 — Count the trainable parameters
#
# Write `count_trainable(model)`: the number of parameters with `requires_grad=True`. A parameter
# shared by two modules (tied weights: a causal LM's `lm_head` is often the embedding matrix) must
# be counted **once**. Hint: `model.parameters()` already skips duplicates, but only if you do not
# go through `named_modules()` yourself; counting by `id(p)` is the safe way.

# %%
def count_trainable(model: torch.nn.Module) -> int:
    """Number of trainable parameters, each tied tensor counted once."""
    ### BEGIN SOLUTION
    seen, total = set(), 0
    for p in model.parameters():
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total
    ### END SOLUTION


# %% course={"grade_id": "q1_count_trainable", "points": 2}
from course_lib.grading import check

m = tiny_classifier(num_labels=3)
check.equal("all_trainable", count_trainable(m), 8_864,
            hint="with nothing frozen, count every element of every parameter once (p.numel())")
for p in m.model.parameters():
    p.requires_grad = False
check.equal("head_only", count_trainable(m), 48,
            hint="only score.weight (3 labels × 16 features) still has requires_grad=True")
### BEGIN HIDDEN TESTS
torch.manual_seed(0)
lm = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                  num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=True))
check.equal("tied_counted_once", count_trainable(lm), sum(p.numel() for p in lm.parameters()))
check.equal("bigger_head", count_trainable(tiny_classifier(num_labels=7, layers=1)), 3_744)
### END HIDDEN TESTS

# %% [markdown]
# ## Part 2 — A freezing helper
#
# Write `freeze_except(model, patterns)`: set `requires_grad=False` on every parameter whose name
# matches **none** of the regular expressions in `patterns` (use `re.search`), `True` on the
# others, and return the list of trainable names in `model.named_parameters()` order.

# %%
import re


def freeze_except(model: torch.nn.Module, patterns: list[str]) -> list[str]:
    """Freeze all parameters except those whose name matches one of `patterns`; return the trainable names."""
    ### BEGIN SOLUTION
    trainable = []
    for name, p in model.named_parameters():
        p.requires_grad = any(re.search(pattern, name) for pattern in patterns)
        if p.requires_grad:
            trainable.append(name)
    return trainable
    ### END SOLUTION


# %% course={"grade_id": "q2_freeze_except", "points": 3}
from course_lib.grading import check

m = tiny_classifier()
names = freeze_except(m, [r"^score\."])
check.equal("probe_names", names, ["score.weight"], hint="a linear probe trains the head only")
check.equal("probe_count", count_trainable(m), 48,
            hint="parameters you did not name must end with requires_grad=False")
names = freeze_except(m, [r"^score\.", r"layers\.2\."])
check.equal("top_block_names", len(names), 10,
            hint="block 2 has 9 parameter tensors (4 attention, 3 MLP, 2 norms) plus the head")
### BEGIN HIDDEN TESTS
names = freeze_except(m, [r"norm"])
check.equal("norms", names, [n for n, _ in m.named_parameters() if "norm" in n])
check.equal("re_frozen_head", m.score.weight.requires_grad, False)
check.equal("nothing", freeze_except(m, []), [])
### END HIDDEN TESTS

# %% [markdown]
# ## Part 3 — The size of a linear probe
#
# course-tiny has `d_model = 128` and the classification task has 6 labels; its head
# (`score`, no bias) is the only thing a linear probe trains. How many trainable parameters does
# the linear probe have? Set `answer_q3` to an `int` (compute it, or read it from the lesson).

# %%
### BEGIN SOLUTION
answer_q3 = 128 * 6
### END SOLUTION

# %% course={"grade_id": "q3_probe_size", "points": 1}
from course_lib.grading import check

check.equal("answer_q3", answer_q3, 768, hint="the head is a (labels × d_model) matrix")

# %% [markdown]
# ## Part 4 — What is not fine-tuning?
#
# Which of these is **not** a way of fine-tuning a model? Set `answer_q4` to `"A"`, `"B"`, `"C"` or
# `"D"`.
#
# - A) updating all parameters of a pretrained model on task data (full fine-tuning)
# - B) training low-rank matrices added to a frozen pretrained model (LoRA)
# - C) training a model of the same architecture from random initialisation on the task data
# - D) training small adapter modules inserted into a frozen pretrained model

# %%
### BEGIN SOLUTION
answer_q4 = "C"
### END SOLUTION

# %% course={"grade_id": "q4_not_fine_tuning", "points": 1}
from course_lib.grading import check

check.equal("answer_q4", answer_q4, "C",
            hint="fine-tuning always starts from pretrained parameters; which option starts from random ones?")

# %% [markdown]
# ## Part 5 — Reading the learning curve
#
# In the lesson's learning curve (`data/results/learning_curve.json`), look at the **smallest**
# training-set size. Which method has the highest mean validation accuracy there? Set `answer_q5`
# to its key: `"scratch"`, `"linear_probe"`, `"top_blocks"` or `"full"`. Then set `answer_q5_gap` to
# the difference in mean accuracy between that method and `"scratch"` at the same size (a float,
# e.g. `0.25`; within 0.01 counts).

# %%
### BEGIN SOLUTION
from course_lib.results import load_results
from course_lib.transfer import curve_summary

summary = curve_summary(load_results("learning_curve"))
smallest = min(summary["scratch"])
answer_q5 = max(summary, key=lambda m: summary[m][smallest][0])
answer_q5_gap = summary[answer_q5][smallest][0] - summary["scratch"][smallest][0]
### END SOLUTION

# %% course={"grade_id": "q5_learning_curve", "points": 2}
from course_lib.grading import check
from course_lib.results import load_results
from course_lib.transfer import curve_summary

summary = curve_summary(load_results("learning_curve"))
smallest = min(summary["scratch"])
best = max(summary, key=lambda m: summary[m][smallest][0])
check.equal("answer_q5", answer_q5, best,
            hint=f"use the lesson's table, row {smallest}: which column is largest?")
check.close("answer_q5_gap", answer_q5_gap, summary[best][smallest][0] - summary["scratch"][smallest][0],
            abs_tol=0.01, hint="best method's mean minus the from-scratch mean, at the smallest size")
