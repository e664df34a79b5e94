# %% [markdown]
# # 05 · Exercises: catastrophic forgetting
#
# Five graded parts. Four are small pieces of `course_lib.forgetting.measuring` written by you and checked
# against the library: the forgetting metric and its sign convention, replay batch mixing, the
# EWC penalty, and reading the learn-vs-forget results of lesson 05. The fifth is a decision: you
# choose a learning rate and a replay fraction for fine-tuning course-tiny, and the test runs your
# choice and measures what it learned and forgot (13 points in all). Runtime: under a minute on a
# CPU, plus the candidates you try in part 5 (about 10 s each). In each answer cell your code
# replaces the lines `# YOUR CODE HERE` and `raise NotImplementedError()`; the test cell below it
# says what is wrong.

# %%
import math
import random

import torch

from course_lib.forgetting import ewc
from course_lib import forgetting as fg
from course_lib.doctor import versions_line
from course_lib.grading import check
from course_lib.models import set_threads
from course_lib.notebook import quiet_notebook
from course_lib.results import load_results

set_threads()  # one CPU thread (COURSE_THREADS): the same numbers on every machine
quiet_notebook()  # no progress bars, known notices or DeepSpeed's CPU warning in the saved outputs
print(versions_line())

# %% [markdown]
# ## Part 1 · A forgetting metric with a sign convention (2 points)
#
# Lesson 05 reports forgetting as the change in mean loss on general held-out text, in nats per
# token, **positive when the model got worse**: forgetting = ln PPL_after − ln PPL_before.
# Target gain uses the opposite difference on the target's validation set, so that it is
# **positive when the model learned**. Write both.

# %%
def forgetting(ppl_before: float, ppl_after: float) -> float:
    """Δ general loss in nats/token; > 0 means the model forgot."""
    ### BEGIN SOLUTION
    return math.log(ppl_after) - math.log(ppl_before)
    ### END SOLUTION


def target_gain(ppl_before: float, ppl_after: float) -> float:
    """−Δ target loss in nats/token; > 0 means the model learned."""
    ### BEGIN SOLUTION
    return math.log(ppl_before) - math.log(ppl_after)
    ### END SOLUTION


# %% course={"grade_id": "q1_forgetting_metric", "points": 2}
check.close("forgetting_doubling", forgetting(20.0, 40.0), math.log(2), rel_tol=1e-9,
            hint="perplexity doubled: forgetting is ln 2 ≈ 0.693, positive")
check.close("forgetting_improved", forgetting(40.0, 20.0), -math.log(2), rel_tol=1e-9,
            hint="general perplexity fell: that is negative forgetting")
check.close("gain_halved", target_gain(12.0, 6.0), math.log(2), rel_tol=1e-9,
            hint="target perplexity halved: gain is +ln 2 — did you swap before and after?")
### BEGIN HIDDEN TESTS
check.close("forgetting_none", forgetting(7.5, 7.5), 0.0, abs_tol=1e-12)
check.close("forgetting_lib", forgetting(31.4, 35.9), fg.forgetting(31.4, 35.9), rel_tol=1e-9)
check.close("gain_lib", target_gain(9.1, 4.2), fg.target_gain(9.1, 4.2), rel_tol=1e-9)
### END HIDDEN TESTS

# %% [markdown]
# ## Part 2 · Replay: mix old data into every batch (3 points)
#
# Write a generator that yields batches (lists of rows) forever. Each batch has
# `round(fraction * batch_size)` rows from `old_rows` and the rest from `target_rows`. Each source
# is walked in a shuffled order, reshuffled after every full pass, so every row is seen once per
# pass. Use `random.Random(seed)` for all randomness.

# %%
def replay_mix(target_rows, old_rows, fraction: float, batch_size: int, seed: int = 0):
    """Endless batches with round(fraction × batch_size) old rows each."""
    ### BEGIN SOLUTION
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    rng = random.Random(seed)
    n_old = round(fraction * batch_size)

    def forever(rows):
        while True:
            order = list(rows)
            rng.shuffle(order)
            yield from order

    target, old = forever(target_rows), forever(old_rows)
    while True:
        batch = [next(old) for _ in range(n_old)] + [next(target) for _ in range(batch_size - n_old)]
        rng.shuffle(batch)
        yield batch
    ### END SOLUTION


# %% course={"grade_id": "q2_replay_mix", "points": 3}
target_rows = [f"t{i}" for i in range(10)]
old_rows = [f"o{i}" for i in range(6)]
stream = replay_mix(target_rows, old_rows, 0.25, 16, seed=0)
batches = [next(stream) for _ in range(5)]
check.equal("batch_sizes", [len(b) for b in batches], [16] * 5, hint="every batch has batch_size rows")
check.equal("old_per_batch", [sum(r.startswith("o") for r in b) for b in batches], [4] * 5,
            hint="round(0.25 × 16) = 4 old rows in every batch, not just on average")
first_batch = next(replay_mix(target_rows, old_rows, 0.375, 16, seed=1))
check.equal("one_pass_each", sorted(first_batch), sorted(target_rows + old_rows),
            hint="6 old and 10 target rows: one shuffled pass over each list, no row twice")
### BEGIN HIDDEN TESTS
for fraction, size in [(0.0, 8), (1.0, 4), (0.1, 16), (0.5, 7)]:
    got = next(replay_mix(target_rows, old_rows, fraction, size, seed=2))
    check.equal(f"old_count_{fraction}_{size}", sum(r.startswith("o") for r in got), round(fraction * size))
    check.equal(f"size_{fraction}_{size}", len(got), size)
### END HIDDEN TESTS

# %% [markdown]
# ## Part 3 · The EWC penalty (3 points)
#
# Elastic weight consolidation (Kirkpatrick et al., PNAS 2017, eq. 3) adds to the new task's loss
# (λ/2) Σ_i F_i (θ_i − θ*_i)², where θ* are the weights after the old task and F the diagonal
# Fisher information. `params`, `anchor` and `fisher` are dicts from parameter name to tensor;
# sum over the names in `fisher` only, and return a tensor that gradients can flow through.

# %%
def ewc_penalty(params: dict, anchor: dict, fisher: dict, lam: float) -> torch.Tensor:
    """(λ/2) Σ_i F_i (θ_i − θ*_i)² over the names in `fisher`."""
    ### BEGIN SOLUTION
    total = torch.zeros(())
    for name, f in fisher.items():
        total = total + (f * (params[name] - anchor[name]) ** 2).sum()
    return lam / 2 * total
    ### END SOLUTION


# %% course={"grade_id": "q3_ewc_penalty", "points": 3}
torch.manual_seed(0)
layer = torch.nn.Linear(3, 2)
anchor = {n: p.detach().clone() for n, p in layer.named_parameters()}
fisher = {"weight": torch.tensor([[1.0, 0.0, 2.0], [0.5, 0.5, 0.5]]), "bias": torch.tensor([4.0, 0.0])}
check.close("at_anchor", ewc_penalty(dict(layer.named_parameters()), anchor, fisher, lam=10.0).item(), 0.0,
            abs_tol=1e-12, hint="at θ = θ* every term is zero")
with torch.no_grad():
    layer.weight += 0.1
    layer.bias -= 0.2
penalty = ewc_penalty(dict(layer.named_parameters()), anchor, fisher, lam=10.0)
check.close("moved", penalty.item(), 5 * (0.01 * (1 + 2 + 1.5) + 0.04 * 4), rel_tol=1e-5,
            hint="λ/2 = 5 times Σ F·(Δθ)²: did you forget the ½, or square F instead of Δθ?")
penalty.backward()
check.close("grad_bias", layer.bias.grad.tolist(), [10.0 * 4.0 * -0.2, 0.0], rel_tol=1e-5,
            hint="d/dθ of (λ/2) F (θ − θ*)² is λ F (θ − θ*): keep the graph (no .item() or .detach())")
### BEGIN HIDDEN TESTS
only_bias = ewc_penalty(dict(layer.named_parameters()), anchor, {"bias": fisher["bias"]}, lam=3.0)
check.close("only_named", only_bias.item(), 1.5 * 0.04 * 4, rel_tol=1e-5)
lib = ewc.ewc_penalty(dict(layer.named_parameters()), anchor, fisher, 7.0).item()
check.close("matches_library", ewc_penalty(dict(layer.named_parameters()), anchor, fisher, lam=7.0).item(), lib,
            rel_tol=1e-5)
### END HIDDEN TESTS

# %% [markdown]
# ## Part 4 · Reading the learn-vs-forget results (2 points)
#
# Load `data/results/forgetting.json` (made by `course forgetting`, plotted in lesson 05) and
# summarise it with `fg.summarize`, which gives each configuration's `(mean, std)` over seeds.
#
# 1. `replay_removed`: the share of full fine-tuning's mean forgetting that 25 % replay removes,
#    1 − forgetting("full + replay 25%") / forgetting("full"), from the means.
# 2. `cheapest`: among the configurations trained on task A only (every name except
#    `"A then B"`), the name with the least forgetting per nat of target gain — the smallest
#    mean forgetting / mean gain. A negative value (general text got *better*) counts as smallest.

# %%
results = load_results("forgetting")
summary = fg.summarize(results)
### BEGIN SOLUTION
replay_removed = 1 - summary["full + replay 25%"]["forgetting"][0] / summary["full"]["forgetting"][0]
ratios = {name: s["forgetting"][0] / s["gain"][0] for name, s in summary.items() if name != "A then B"}
cheapest = min(ratios, key=ratios.get)
### END SOLUTION
print(f"replay removes {replay_removed:.0%} of the forgetting; least forgetting per nat learned: {cheapest}")

# %% course={"grade_id": "q4_read_results", "points": 2}
check.close("replay_removed", replay_removed,
            1 - summary["full + replay 25%"]["forgetting"][0] / summary["full"]["forgetting"][0], rel_tol=1e-6,
            hint="1 − mean forgetting with replay / mean forgetting of full fine-tuning")
check.equal("cheapest_is_a_name", cheapest in summary and cheapest != "A then B", True,
            hint="one of the configuration names in summary, other than 'A then B'")
### BEGIN HIDDEN TESTS
ref_ratios = {name: s["forgetting"][0] / s["gain"][0] for name, s in summary.items() if name != "A then B"}
check.equal("cheapest", cheapest, min(ref_ratios, key=ref_ratios.get))
### END HIDDEN TESTS

# %% [markdown]
# ## Part 5 · Decide: learn the target, forget almost nothing (3 points)
#
# Lesson 05 found that on course-tiny the learning rate is the strongest lever against forgetting,
# and replay a cheap second one. Now you choose. The job: full fine-tuning of course-tiny on task A
# (the instruction set) for 20 steps of 8 rows cut to 64 tokens, seed 0, measured on the first 48
# texts of each set — `DECISION` below. Choose `my_learning_rate` (AdamW's peak) and
# `my_replay_fraction` (the share of each batch taken from pre-training text, 0 to 0.5) so that
#
# - the target gain is **at least 2.6** nats/token, and
# - the forgetting is **at most 0.05** nats/token.
#
# `try_setting(learning_rate, replay_fraction)` runs one candidate (about 10 s on a CPU) and
# returns its gain and forgetting: try a few, one lever at a time, then set your two variables.
# The test cell fine-tunes course-tiny with your choice and measures both.

# %%
from course_lib.experiments.forgetting import ExperimentConfig, RunSpec, run_one
from course_lib.models import COURSE_TINY, load_base_model, load_tokenizer

DECISION = ExperimentConfig(seeds=[0], max_steps=20, per_device_train_batch_size=8, max_length=64, eval_steps=20,
                            curve_texts=16, eval_texts=48)
tiny_tokenizer, tiny = load_tokenizer(COURSE_TINY), load_base_model(COURSE_TINY)
task_data = fg.load_task_data()
tiny_base = fg.measure(tiny, tiny_tokenizer, task_data, DECISION.max_length, task_b=False,
                       max_texts=DECISION.eval_texts)


def try_setting(learning_rate: float, replay_fraction: float = 0.0) -> dict[str, float]:
    """Fine-tune a copy of course-tiny as DECISION says; its target gain and forgetting (nats/token)."""
    spec = RunSpec("choice", learning_rate=learning_rate, replay_fraction=replay_fraction)
    run = run_one(tiny, tiny_tokenizer, task_data, spec, seed=0, config=DECISION, base=tiny_base)
    return {"gain": run["gain"], "forgetting": run["forgetting"]}


print(f"course-tiny before: target perplexity {tiny_base['target_ppl']:.2f}, general {tiny_base['general_ppl']:.2f}")

# %%
### BEGIN SOLUTION
for lr, replay in ((1e-3, 0.0), (3e-4, 0.25)):  # lesson 05's rate forgets far too much; then smaller steps + replay
    outcome = try_setting(lr, replay)
    print(f"lr {lr:g}, replay {replay:.0%}: gain {outcome['gain']:+.3f}, forgetting {outcome['forgetting']:+.3f}")
my_learning_rate = 3e-4
my_replay_fraction = 0.25
### END SOLUTION

# %% course={"grade_id": "q5_decide_lr_replay", "points": 3}
import math

from course_lib import forgetting as fg
from course_lib.experiments.forgetting import ExperimentConfig, RunSpec, run_one
from course_lib.grading import check
from course_lib.models import COURSE_TINY, load_base_model, load_tokenizer

check.equal("lr_is_a_number", isinstance(my_learning_rate, (int, float)) and not isinstance(my_learning_rate, bool),
            True, hint="my_learning_rate is a number such as 1e-3")
check.equal("replay_is_a_number",
            isinstance(my_replay_fraction, (int, float)) and not isinstance(my_replay_fraction, bool), True,
            hint="my_replay_fraction is a number between 0 and 0.5")
check.equal("lr_in_range", 0 < my_learning_rate <= 1e-2, True, hint="a learning rate above 0 and at most 1e-2")
check.equal("replay_in_range", 0 <= my_replay_fraction <= 0.5, True, hint="a replay fraction from 0 to 0.5")
decision = ExperimentConfig(seeds=[0], max_steps=20, per_device_train_batch_size=8, max_length=64, eval_steps=20,
                            curve_texts=16, eval_texts=48)
grader_tokenizer, grader_model = load_tokenizer(COURSE_TINY), load_base_model(COURSE_TINY)
grader_data = fg.load_task_data()
grader_base = fg.measure(grader_model, grader_tokenizer, grader_data, 64, task_b=False, max_texts=48)
outcome = run_one(grader_model, grader_tokenizer, grader_data,
                  RunSpec("choice", learning_rate=float(my_learning_rate), replay_fraction=float(my_replay_fraction)),
                  seed=0, config=decision, base=grader_base)
print(f"your choice: gain {outcome['gain']:+.3f}, forgetting {outcome['forgetting']:+.3f} nats/token")
check.equal("gain_reached", outcome["gain"] >= 2.6, True,
            hint="the target gain is below 2.6: the steps are too small to learn the format in 20 steps")
check.equal("forgetting_bounded", outcome["forgetting"] <= 0.05, True,
            hint="forgetting is above 0.05: smaller steps, or more replay, pull general text back")
### BEGIN HIDDEN TESTS
check.close("base_target_ppl", grader_base["target_ppl"], 166.659, rel_tol=1e-3)
check.close("base_general_ppl", grader_base["general_ppl"], 130.515, rel_tol=1e-3)
check.equal("finite", math.isfinite(outcome["gain"]) and math.isfinite(outcome["forgetting"]), True)
### END HIDDEN TESTS

# %% [markdown]
# ## Where this leads
#
# You have written the three pieces of lesson 05's toolbox and used two of its levers to meet a
# budget. In a real fine-tuning job, measure forgetting on a held-out general set *before* you
# start, so that "the model got worse at X" is a number you can compare, and try the cheapest
# lever — the learning rate — first.
