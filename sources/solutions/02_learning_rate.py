# %% [markdown]
# # Exercises 02 — The learning rate
#
# Work through `lessons/02_learning_rate.ipynb` first. Each part has an answer cell (replace its
# `# YOUR CODE HERE` and `raise NotImplementedError()` lines with your code) and a test cell that
# checks it. The last part is a decision: you choose a learning rate and the test trains with it.
# About a minute and a half on a 2-core CPU.

# %%
import math

import torch
import transformers

from course_lib.doctor import versions_line
from course_lib.models import set_threads
from course_lib.notebook import quiet_notebook

set_threads()  # one CPU thread (COURSE_THREADS): the same numbers on every machine
quiet_notebook()  # no progress bars, known notices or DeepSpeed's CPU warning in the saved outputs
print(versions_line())

# %% [markdown]
# ## Part 1 — The exponential sweep
#
# The LR range test tries `num_steps` learning rates spaced evenly **on a log scale** from
# `start_lr` to `end_lr` (both included): each is the previous one times a constant factor. Write
# `exponential_sweep(start_lr, end_lr, num_steps)` returning them as a list of floats.

# %%
def exponential_sweep(start_lr: float, end_lr: float, num_steps: int) -> list[float]:
    """`num_steps` LRs from start_lr to end_lr, each a constant factor times the previous one."""
    ### BEGIN SOLUTION
    factor = (end_lr / start_lr) ** (1 / (num_steps - 1))
    return [start_lr * factor ** i for i in range(num_steps)]
    ### END SOLUTION


# %% course={"grade_id": "q1_exponential_sweep", "points": 2}
from course_lib.grading import check

lrs = exponential_sweep(1e-7, 10.0, 100)
check.equal("sweep_length", len(lrs), 100, hint="one LR per step, both ends included")
check.close("sweep_ends", [lrs[0], lrs[-1]], [1e-7, 10.0], rel_tol=1e-9,
            hint="the first LR is start_lr and the last is end_lr")
check.close("sweep_middle", exponential_sweep(1e-4, 1e-2, 3)[1], 1e-3, rel_tol=1e-9,
            hint="on a log scale the midpoint of 1e-4 and 1e-2 is 1e-3, not 5e-3")
### BEGIN HIDDEN TESTS
from course_lib.training import exponential_lrs

check.close("sweep_matches_library", exponential_sweep(1e-6, 1.0, 37), exponential_lrs(1e-6, 1.0, 37), rel_tol=1e-9)
check.equal("sweep_type", type(exponential_sweep(1e-3, 1e-1, 5)).__name__, "list")
### END HIDDEN TESTS

# %% [markdown]
# ## Part 2 — Warm-up and cosine decay
#
# Write `cosine_lr(t, eta_max, warmup, total, eta_min=0.0)`, the learning rate at step `t`
# (counted from 0): for `t < warmup` it rises linearly, `eta_max * t / warmup`; after that it is
# $\eta_{min} + \tfrac12(\eta_{max} - \eta_{min})(1 + \cos(\pi\,(t - warmup)/(total - warmup)))$.
# With `eta_min=0` it must match transformers' `get_cosine_schedule_with_warmup`.

# %%
def cosine_lr(t: int, eta_max: float, warmup: int, total: int, eta_min: float = 0.0) -> float:
    """Learning rate at step t: linear warm-up, then cosine decay from eta_max to eta_min."""
    ### BEGIN SOLUTION
    if t < warmup:
        return eta_max * t / warmup
    progress = (t - warmup) / (total - warmup)
    return eta_min + 0.5 * (eta_max - eta_min) * (1 + math.cos(math.pi * progress))
    ### END SOLUTION


# %% course={"grade_id": "q2_cosine", "points": 3}
from transformers import get_cosine_schedule_with_warmup

from course_lib.grading import check

opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2e-3)
sched = get_cosine_schedule_with_warmup(opt, num_warmup_steps=10, num_training_steps=100)
reference = []
for _ in range(100):
    reference.append(opt.param_groups[0]["lr"])
    opt.step()
    sched.step()
mine = [cosine_lr(t, 2e-3, 10, 100) for t in range(100)]
check.close("warmup_part", mine[:10], reference[:10], rel_tol=1e-9, abs_tol=1e-12,
            hint="during warm-up the LR is eta_max * t / warmup, starting at 0")
check.close("cosine_part", mine[10:], reference[10:], rel_tol=1e-9, abs_tol=1e-12,
            hint="after warm-up, measure progress from the end of warm-up: (t - warmup) / (total - warmup)")
check.close("eta_min_at_end", cosine_lr(100, 1.0, 0, 100, eta_min=0.1), 0.1, rel_tol=1e-9,
            hint="at t = total the cosine term is -1, leaving eta_min")
### BEGIN HIDDEN TESTS
check.close("halfway", cosine_lr(60, 1.0, 20, 100, eta_min=0.2), 0.6, rel_tol=1e-9)
check.close("peak", cosine_lr(5, 3e-4, 5, 50), 3e-4, rel_tol=1e-9)
### END HIDDEN TESTS

# %% [markdown]
# ## Part 3 — Discriminative learning rates
#
# Write `layerwise_lrs(lr, n_groups, factor=2.6)`: the learning rate of each of `n_groups` layer
# groups, **bottom group first**, where the top group gets `lr` and each group gets the LR of the
# group above it divided by `factor` (ULMFiT).

# %%
def layerwise_lrs(lr: float, n_groups: int, factor: float = 2.6) -> list[float]:
    """LR per layer group, bottom first; the top group gets `lr`, each lower one ÷ factor."""
    ### BEGIN SOLUTION
    return [lr / factor ** (n_groups - 1 - i) for i in range(n_groups)]
    ### END SOLUTION


# %% course={"grade_id": "q3_layerwise", "points": 2}
from course_lib.grading import check

check.close("three_groups", layerwise_lrs(1e-3, 3), [1e-3 / 2.6 ** 2, 1e-3 / 2.6, 1e-3], rel_tol=1e-9,
            hint="bottom first: the last entry is the top group's lr, unchanged")
check.close("factor_two", layerwise_lrs(8.0, 4, factor=2.0), [1.0, 2.0, 4.0, 8.0], rel_tol=1e-9)
### BEGIN HIDDEN TESTS
from transformers import LlamaConfig, LlamaForSequenceClassification

from course_lib.training import discriminative_lr_groups

torch.manual_seed(0)
tiny = LlamaForSequenceClassification(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32,
                                                  num_hidden_layers=2, num_attention_heads=2,
                                                  num_key_value_heads=2, pad_token_id=0, num_labels=3))
lib = [g["lr"] for g in discriminative_lr_groups(tiny, 3e-4)]
check.close("matches_library", layerwise_lrs(3e-4, len(lib)), lib, rel_tol=1e-9)
check.equal("one_group", len(layerwise_lrs(1.0, 1)), 1)
### END HIDDEN TESTS

# %% [markdown]
# ## Part 4 — The embeddings' learning rate
#
# course-tiny as a classifier has 6 layer groups (embeddings, 4 blocks, head). With ULMFiT's factor
# 2.6, how many times smaller than the head's LR is the embeddings' LR? Set `answer_q4` to a float
# (within 1 %).

# %%
### BEGIN SOLUTION
answer_q4 = 2.6 ** 5
### END SOLUTION

# %% course={"grade_id": "q4_embedding_ratio", "points": 1}
from course_lib.grading import check

check.close("answer_q4", answer_q4, rel_tol=0.01,
            hint="a number: count the divisions between the head and the embeddings")
### BEGIN HIDDEN TESTS
check.close("answer_q4_value", answer_q4, 118.81376, rel_tol=0.01)
### END HIDDEN TESTS

# %% [markdown]
# ## Part 5 — What the LR range test does
#
# Which statement about `lr_find` (and fastai's `lr_find`) is **true**? Set `answer_q5` to `"A"`,
# `"B"`, `"C"` or `"D"`.
#
# - A) It trains the model with the best learning rate it found and returns the trained model.
# - B) It sweeps the LR upwards on a short run, then restores the original weights; the suggested
#   LRs lie below the point where the loss blew up.
# - C) The best LR is the one at the lowest loss of the sweep, exactly.
# - D) NaN losses are kept in the curve so that the plot shows where training failed.

# %%
### BEGIN SOLUTION
answer_q5 = "B"
### END SOLUTION

# %% course={"grade_id": "q5_range_test", "points": 1}
from course_lib.grading import check

check.equal("answer_q5", answer_q5,
            hint="a str; the sweep is a measurement: what happens to the weights afterwards, and to NaN points?")
### BEGIN HIDDEN TESTS
check.equal("answer_q5_value", answer_q5, "B")
### END HIDDEN TESTS

# %% [markdown]
# ## Part 6 — Reading the LR comparison
#
# The lesson's table of learning rates (`data/results/lr_sweep.json`, section `learning_rates`) has
# three seeds per LR. Among the LRs that never diverged, which one has the **lowest mean final
# validation loss** (the last `val_loss` of each run, averaged over its seeds)? Set `answer_q6` to
# that LR as a float (e.g. `3e-4`).

# %%
### BEGIN SOLUTION
import statistics

from course_lib.results import load_results

final: dict[float, list[float]] = {}
for r in load_results("lr_sweep")["learning_rates"]:
    final.setdefault(r["learning_rate"], []).append(r["val_loss"][-1] if not r["diverged"] else math.inf)
answer_q6 = min((lr for lr in final if math.isfinite(max(final[lr]))), key=lambda lr: statistics.mean(final[lr]))
### END SOLUTION

# %% course={"grade_id": "q6_best_lr", "points": 2}
import statistics

from course_lib.grading import check
from course_lib.results import load_results

rows = load_results("lr_sweep")["learning_rates"]
diverged = {r["learning_rate"] for r in rows if r["diverged"]}
means = {lr: statistics.mean(r["val_loss"][-1] for r in rows if r["learning_rate"] == lr)
         for lr in {r["learning_rate"] for r in rows} - diverged}
check.equal("answer_q6_type", type(answer_q6).__name__, "float", hint="an LR such as 3e-4, a float")
### BEGIN HIDDEN TESTS
check.close("answer_q6", answer_q6, min(means, key=means.get), rel_tol=1e-6,
            hint="average the last val_loss of the three seeds of each LR, and skip the LR that diverged")
### END HIDDEN TESTS

# %% [markdown]
# ## Part 7 — A decision: choose the learning rate
#
# You may train the course-tiny classifier (full fine-tuning, batch 16, constant LR, no warm-up,
# seed 0) for **30 steps** only. Choose a learning rate with which it reaches a validation accuracy
# of at least **0.50** after those 30 steps. Spend little on the choice, as you would on a real
# model: one `lr_find` sweep (a few seconds; `lr_find`, `build_classifier` and the tokenized data are
# imported below) to get a range, then at most **two** short runs with `accuracy_after(lr)` to pick
# within it. Set `chosen_lr` to a float. The test trains with your LR and measures the accuracy; a
# hidden test checks that your LR also works with another seed, so do not pick an LR on the edge.

# %%
from dataclasses import replace

from course_lib.data import load_course_dataset
from course_lib.data import collator_for, tokenize_classification
from course_lib.training import LRFinderConfig, lr_find
from course_lib.models import load_tokenizer
from course_lib.training import TransferConfig, build_classifier, fine_tune_classifier

ds = load_course_dataset("classification")
train_rows, val_rows = list(ds["train"]), list(ds["validation"])
tokenizer = load_tokenizer()
collate = collator_for(tokenizer, "classification")
train_enc = tokenize_classification(tokenizer, train_rows)
budget = TransferConfig(max_steps=30)  # the step budget: 30 optimizer steps of 16 examples


def accuracy_after(lr: float, seed: int = 0) -> float:
    """Validation accuracy after the 30-step budget at a constant `lr` (about 5 s on course-tiny)."""
    tc = replace(budget.train_config("full", seed), learning_rate=lr, lr_scheduler_type="constant",
                 warmup_ratio=0.0)
    return fine_tune_classifier("full", train_rows, val_rows, budget, seed, tokenizer, tc).accuracy


# %%
### BEGIN SOLUTION
finder = lr_find(build_classifier("full", budget, seed=0), train_enc,
                 LRFinderConfig(start_lr=1e-6, end_lr=10.0, num_steps=60, disable_tqdm=True), collate_fn=collate)
candidates = sorted({round(finder.valley, 5), round(finder.minimum, 5)})  # the range lr_find brackets
scores = {lr: accuracy_after(lr) for lr in candidates}  # two short runs
chosen_lr = float(max(scores, key=scores.get))
### END SOLUTION
print(f"chosen LR {chosen_lr:g}")

# %% course={"grade_id": "q7_lr_decision", "points": 3}
from dataclasses import replace

from course_lib.data import load_course_dataset
from course_lib.grading import check
from course_lib.training import TransferConfig, fine_tune_classifier


def measured_accuracy(lr: float, seed: int) -> float:
    rows = load_course_dataset("classification")
    config = TransferConfig(max_steps=30)
    tc = replace(config.train_config("full", seed), learning_rate=lr, lr_scheduler_type="constant", warmup_ratio=0.0)
    return fine_tune_classifier("full", list(rows["train"]), list(rows["validation"]), config, seed,
                                train_config=tc).accuracy


check.equal("chosen_lr_type", type(chosen_lr).__name__, "float", hint="set chosen_lr to a float such as 3e-4")
accuracy = measured_accuracy(chosen_lr, seed=0)
print(f"LR {chosen_lr:g}: validation accuracy {accuracy:.3f} after 30 steps (target 0.50)")
check.equal("reaches_target", accuracy >= 0.50, True,
            hint="too low: too small an LR barely moves the model in 30 steps, too large a one never settles")
### BEGIN HIDDEN TESTS
check.equal("reaches_target_seed1", measured_accuracy(chosen_lr, seed=1) >= 0.45, True)
### END HIDDEN TESTS
