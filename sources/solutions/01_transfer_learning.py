# %% [markdown]
# # Exercises 01 — Transfer learning
#
# Work through `lessons/01_transfer_learning.ipynb` first. Each part has an answer cell (replace its
# `# YOUR CODE HERE` and `raise NotImplementedError()` lines with your code) and a test cell that checks it; run the test cell
# to see whether you are right. About a minute to run on a 2-core CPU (part 5 trains a model).

# %%
import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

from course_lib.doctor import versions_line
from course_lib.models import set_threads
from course_lib.notebook import quiet_notebook

set_threads()  # one CPU thread (COURSE_THREADS): the same numbers on every machine
quiet_notebook()  # no progress bars, known notices or DeepSpeed's CPU warning in the saved outputs
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

check.equal("answer_q3", answer_q3, hint="an int: the head is a (labels × d_model) matrix")
### BEGIN HIDDEN TESTS
check.equal("answer_q3_value", answer_q3, 768)
### END HIDDEN TESTS

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

check.equal("answer_q4", answer_q4,
            hint="a str: one letter, A–D")
### BEGIN HIDDEN TESTS
check.equal("answer_q4_value", answer_q4, "C")
### END HIDDEN TESTS

# %% [markdown]
# ## Part 5 — Decide when to stop (a decision, measured)
#
# Lesson 01, section 6: full fine-tuning of course-tiny on 25 labelled examples (seed 0) overfits
# long before its 80 steps are over. Choose an early-stopping rule for that run: set `answer_q5` to a
# `TransferConfig` that differs from `TransferConfig()` only in these four settings:
#
# - `eval_steps`: evaluate every this many steps (an `int` between 1 and 40),
# - `metric_for_best_model`: `"loss"` or `"accuracy"` (validation loss or validation accuracy),
# - `early_stopping_patience`: stop after this many evaluations without improvement (an `int` ≥ 1),
# - `load_best_model_at_end`: `True` to get the weights of the best evaluation back, `False` to keep the last.
#
# The test trains with your rule (seed 0, one thread, 10–30 s) and passes when the model you get
# back reaches **validation accuracy ≥ 0.30** and training **stopped by step 40** (half the steps).
# Training all 80 steps ends at 0.291 (the lesson's table), so the rule has to stop early *and* keep
# the right model. Use the lesson's table of validation loss and accuracy to decide.

# %%
from course_lib.training import TransferConfig

### BEGIN SOLUTION
answer_q5 = TransferConfig(eval_steps=5, metric_for_best_model="accuracy", early_stopping_patience=2,
                           load_best_model_at_end=True)
### END SOLUTION

# %% course={"grade_id": "q5_early_stopping", "points": 3}
from dataclasses import asdict, replace

from course_lib.data import load_course_dataset
from course_lib.grading import check
from course_lib.training import TransferConfig, fine_tune_classifier, subset

CHOICES = ("eval_steps", "metric_for_best_model", "early_stopping_patience", "load_best_model_at_end")
check.equal("answer_q5_type", type(answer_q5).__name__, "TransferConfig",
            hint="build it with TransferConfig(eval_steps=..., ...)")
check.equal("other_settings_unchanged", {k: v for k, v in asdict(answer_q5).items() if k not in CHOICES},
            {k: v for k, v in asdict(TransferConfig()).items() if k not in CHOICES},
            hint="change only the four settings of the question: same steps, batch, learning rates")
check.equal("choices_in_range", (isinstance(answer_q5.eval_steps, int) and 1 <= answer_q5.eval_steps <= 40,
                                 answer_q5.metric_for_best_model in ("loss", "accuracy"),
                                 isinstance(answer_q5.early_stopping_patience, int)
                                 and answer_q5.early_stopping_patience >= 1),
            (True, True, True), hint="eval_steps 1–40, metric 'loss' or 'accuracy', patience ≥ 1")
ds = load_course_dataset("classification")
val_by_length = sorted(ds["validation"], key=lambda r: len(r["text"]))  # as in the lesson: same numbers, faster
run = fine_tune_classifier("full", subset(list(ds["train"]), 25, 0), val_by_length,
                           replace(answer_q5, model="course-tiny"), seed=0)  # course-tiny, whatever COURSE_MODEL says
stopped = run.history.stopped_step or answer_q5.max_steps
print(f"stopped at step {stopped}, best evaluation at step {run.history.best_step}, "
      f"validation accuracy of the model you get back {run.accuracy:.3f}")
check.equal("stopped_by_step_40", stopped <= 40, True,
            hint=f"training ran to step {stopped}: evaluate more often or be less patient")
check.equal("accuracy_at_least_0.30", run.accuracy >= 0.30, True,
            hint=f"you got {run.accuracy:.3f}: which metric peaked where, in the lesson's table? "
                 "And which model do you get back at the end?")
### BEGIN HIDDEN TESTS
# the stated target again, in one observation, and no optimizer step after the stop
check.equal("target_0.30_by_step_40", (run.accuracy >= 0.30, stopped <= 40), (True, True))
check.equal("no_step_after_the_stop", run.history.step[-1] == stopped, True)
### END HIDDEN TESTS
