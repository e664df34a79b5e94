# %% [markdown]
# # 09 · Exercises: reinforcement learning with verifiable rewards
#
# Six graded parts, after lesson 09 (12 points in all): a reward function and its edge cases, group-relative
# advantages, the clipped surrogate loss, the zero-advantage fraction, reading a GRPO training log, and choosing
# a group size under a compute budget from the measurements of `course grpo`. Runtime: a few seconds on a CPU
# (tensors and the results file; nothing here loads SmolLM2). In each answer cell your code replaces the lines
# `# YOUR CODE HERE` and `raise NotImplementedError()`; the test cell below it says what is wrong.

# %%
import math
import re

import numpy as np
import torch

from course_lib.doctor import versions_line
from course_lib.grading import check
from course_lib.models import set_threads
from course_lib.notebook import quiet_notebook
from course_lib.results import load_results
from course_lib.tuning import grpo

set_threads()  # one CPU thread (COURSE_THREADS): the same numbers on every machine
quiet_notebook()  # no progress bars or known notices in the saved outputs
print(versions_line())
results = load_results("grpo")

# %% [markdown]
# ## Part 1 · A reward function, and its edge cases (2 points)
#
# Write `final_answer_reward(replies, answers)`: for each reply (a string) and its answer (the integer as a
# string, e.g. `"56"`), return `1.0` when the **last** integer written in the reply (a maximal run of digits)
# is the answer, else `0.0` — also when the reply holds no digit at all. Return a list of floats, one per reply.
# A reply may show its work (`"7 * 8 = 56"`), but the number it ends on is its answer.

# %%
def final_answer_reward(replies: list[str], answers: list[str]) -> list[float]:
    """1.0 where a reply's last integer is its answer, else 0.0."""
    ### BEGIN SOLUTION
    out = []
    for reply, answer in zip(replies, answers):
        numbers = re.findall(r"\d+", reply)
        out.append(1.0 if numbers and numbers[-1] == answer else 0.0)
    return out
    ### END SOLUTION


# %% course={"grade_id": "q1_reward", "points": 2}
scores = final_answer_reward(["12 * 4 = 48", "no idea"], ["48", "48"])
check.equal("type", [type(s).__name__ for s in scores], ["float", "float"], hint="one float per reply")
check.equal("shows_its_work", scores[0], 1.0, hint="the reply ends on 48: the numbers before it are its work")
### BEGIN HIDDEN TESTS
check.equal("no_digit", final_answer_reward(["fifty-six", ""], ["56", "56"]), [0.0, 0.0])
check.equal("hedging", final_answer_reward(["56 or maybe 54"], ["56"]), [0.0])
check.equal("restated", final_answer_reward(["To calculate 7 * 8, we need"], ["56"]), [0.0])
check.equal("full_stop", final_answer_reward(["7 * 8 = 56."], ["56"]), [1.0])
check.equal("not_a_prefix", final_answer_reward(["7 * 8 = 560"], ["56"]), [0.0])
replies = ["9 * 6 = 54\n\nIn mathematics", "3 * 4 = 12, 3 * 5 = 15", "54"]
check.equal("as_course_lib", final_answer_reward(replies, ["54", "15", "54"]),
            grpo.checked_reward(replies, ["54", "15", "54"]))
### END HIDDEN TESTS

# %% [markdown]
# ## Part 2 · Group-relative advantages (2 points)
#
# `rewards` holds the rewards of several groups one after the other (group_size replies of one prompt, then the
# next prompt's). Write `advantages(rewards, group_size)` as TRL computes them with `scale_rewards="group"`:
# each reward minus its group's mean, divided by its group's **sample** standard deviation (n − 1) plus 1e-4.
# Return a float tensor of the same shape as `rewards`.

# %%
def advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """(N,) rewards in groups of group_size -> (N,) group-relative advantages."""
    ### BEGIN SOLUTION
    grouped = rewards.view(-1, group_size)
    centred = grouped - grouped.mean(dim=1, keepdim=True)
    return (centred / (grouped.std(dim=1, keepdim=True) + 1e-4)).flatten()
    ### END SOLUTION


# %% course={"grade_id": "q2_advantages", "points": 2}
r = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0])
a = advantages(r, 4)
check.equal("shape", tuple(a.shape), (8,), hint="one advantage per reply")
check.close("zero_sum_per_group", a.view(2, 4).sum(1).abs().max().item(), 0.0, abs_tol=1e-5,
            hint="subtract each group's own mean, not the batch's")
### BEGIN HIDDEN TESTS
check.close("first_group", a[:4].tolist(), grpo.group_advantages(r, 4)[:4].tolist(), rel_tol=1e-5)
r2 = torch.tensor([0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.5, 0.2])
check.close("groups_of_3", advantages(r2, 3).tolist(), grpo.group_advantages(r2, 3).tolist(), rel_tol=1e-5, abs_tol=1e-6)
check.close("all_equal", advantages(torch.ones(4), 2).abs().sum().item(), 0.0, abs_tol=0.0)
### END HIDDEN TESTS

# %% [markdown]
# ## Part 3 · The clipped surrogate, normalised like DAPO (2 points)
#
# Write `surrogate_loss(logps, old_logps, adv, mask, epsilon)`: `logps`, `old_logps` and `mask` have shape
# (B, T) (per completion token; `mask` is 1 on a completion's tokens, 0 on padding), `adv` shape (B,). Per
# token, with ρ = exp(logps − old_logps), the loss is −min(ρ·A, clip(ρ, 1 − ε, 1 + ε)·A); return the sum over
# the masked tokens divided by the number of masked tokens (TRL's `loss_type="dapo"` on one step of one
# process), as a 0-dimensional tensor. No KL term (β = 0).

# %%
def surrogate_loss(logps, old_logps, adv, mask, epsilon: float = 0.2) -> torch.Tensor:
    """PPO's clipped surrogate per token, summed over completion tokens, over their number."""
    ### BEGIN SOLUTION
    ratio = torch.exp(logps - old_logps)
    a = adv.unsqueeze(1)
    per_token = -torch.min(ratio * a, ratio.clamp(1 - epsilon, 1 + epsilon) * a)
    return (per_token * mask).sum() / mask.sum()
    ### END SOLUTION


# %% course={"grade_id": "q3_surrogate", "points": 2}
logps = torch.log(torch.tensor([[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]]))
mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
same = surrogate_loss(logps, logps, torch.tensor([1.0, -1.0]), mask)
check.equal("scalar", tuple(same.shape), (), hint="one number for the batch")
check.equal("finite", bool(torch.isfinite(same)), True, hint="a number, not NaN: divide by a count of tokens")
### BEGIN HIDDEN TESTS
check.close("on_policy", same.item(), (-1 * 2 + 1 * 3) / 5, rel_tol=1e-6)
g = torch.Generator().manual_seed(0)
lp = -torch.rand(4, 6, generator=g) * 3
old = lp + 0.5 * torch.randn(4, 6, generator=g)
adv = torch.tensor([1.2, -0.7, 0.3, -1.5])
m = torch.tensor([[1.0] * 6, [1.0] * 2 + [0.0] * 4, [1.0] * 4 + [0.0] * 2, [1.0] * 5 + [0.0]])
check.close("as_course_lib", surrogate_loss(lp, old, adv, m).item(),
            grpo.grpo_loss(lp, old, adv, m, loss_type="dapo").loss.item(), rel_tol=1e-5)
check.close("epsilon", surrogate_loss(lp, old, adv, m, 0.1).item(),
            grpo.grpo_loss(lp, old, adv, m, loss_type="dapo", epsilon=0.1).loss.item(), rel_tol=1e-5)
### END HIDDEN TESTS

# %% [markdown]
# ## Part 4 · When the signal vanishes (2 points)
#
# Write `zero_advantage_fraction(rewards, group_size)`: the share of groups (consecutive runs of group_size
# rewards) whose rewards are all equal, as a float. Then write `expected_zero_fraction(p, group_size)`: for a
# prompt answered right with probability p, the probability that a group of independent 0/1 rewards has no
# signal.

# %%
def zero_advantage_fraction(rewards: torch.Tensor, group_size: int) -> float:
    """Share of groups with a zero standard deviation."""
    ### BEGIN SOLUTION
    grouped = rewards.view(-1, group_size)
    return (grouped.max(1).values == grouped.min(1).values).float().mean().item()
    ### END SOLUTION


def expected_zero_fraction(p: float, group_size: int) -> float:
    """P(all group_size rewards are equal) for independent 0/1 rewards with P(1) = p."""
    ### BEGIN SOLUTION
    return p ** group_size + (1 - p) ** group_size
    ### END SOLUTION


# %% course={"grade_id": "q4_zero_signal", "points": 2}
f = zero_advantage_fraction(torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0]), 2)
check.equal("type", type(f).__name__, "float", hint="a Python float (.item())")
check.equal("in_range", 0.0 <= f <= 1.0 and 0.0 <= expected_zero_fraction(0.3, 4) <= 1.0, True,
            hint="shares and probabilities lie between 0 and 1")
### BEGIN HIDDEN TESTS
check.close("pairs", f, 0.75, abs_tol=1e-9)
check.close("all_right_counts_too", expected_zero_fraction(0.9, 4), 0.9 ** 4 + 0.1 ** 4, rel_tol=1e-9)
check.close("half", expected_zero_fraction(0.5, 2), 0.5, rel_tol=1e-9)
check.close("measured", zero_advantage_fraction(torch.tensor(results["groups"]["rewards"]["checked"]).flatten(), 4),
            results["groups"]["zero_std"]["4"], abs_tol=1e-9)
### END HIDDEN TESTS

# %% [markdown]
# ## Part 5 · Reading a GRPO training log (2 points)
#
# `log` below is one run of `course grpo` (seed 0), step by step, as TRL logged it, with the trainer's
# `generation_time`. From the numbers:
#
# - `generation_share`: the share of the run's total step time spent generating (a float);
# - `idle_steps`: how many steps had **no** group with a non-zero advantage, so that the step's update was
#   zero (an int);
# - `answer_loss`: TRL's logged `loss` stays within a few hundredths of 0 while the reward climbs. Why? "A": the
#   model is not learning; "B": with one update per batch the ratio is 1, so the loss is −Σ A·(reply length)
#   over the batch's tokens, and the advantages sum to zero within each group — the value is near 0 while its
#   gradient is not; "C": β = 0 switches the loss off.

# %%
run = results["grpo"]["runs"][0]
log = [{k: run["curve"][k][i] for k in ("step", "reward", "frac_reward_zero_std", "loss", "step_time",
                                        "generation_time")} for i in range(len(run["curve"]["step"]))]
for entry in log:
    print({k: round(v, 3) for k, v in entry.items()})
### BEGIN SOLUTION
generation_share = sum(e["generation_time"] for e in log) / sum(e["step_time"] for e in log)
idle_steps = sum(e["frac_reward_zero_std"] == 1.0 for e in log)
answer_loss = "B"
### END SOLUTION

# %% course={"grade_id": "q5_read_log", "points": 2}
check.equal("types", (type(generation_share).__name__, type(idle_steps).__name__, type(answer_loss).__name__),
            ("float", "int", "str"), hint="a float, an int and one of 'A', 'B', 'C'")
check.equal("share_in_range", 0.0 < generation_share < 1.0, True, hint="a share of the step time")
### BEGIN HIDDEN TESTS
check.close("generation_share", generation_share,
            sum(run["curve"]["generation_time"]) / sum(run["curve"]["step_time"]), rel_tol=1e-3)
check.equal("idle_steps", idle_steps, sum(x == 1.0 for x in run["curve"]["frac_reward_zero_std"]))
check.equal("answer_loss", answer_loss, "B")
### END HIDDEN TESTS

# %% [markdown]
# ## Part 6 · Decision: which group size? (2 points)
#
# You can afford `BUDGET` sampled replies per optimizer step, so a group size G gives BUDGET / G prompts per
# step. `results["groups"]["zero_std"]` holds, for G = 2, 4, 8, 16, the measured share of groups that agree
# (no signal) on the untuned model. Two things pull apart: larger groups agree less, so more of the step's
# replies carry a non-zero advantage, in expectation BUDGET × (1 − share that agree); but they leave fewer
# questions per step, and the step learns from the questions whose group does not agree, in expectation
# BUDGET / G × (1 − share that agree). Your rule: among the group sizes whose step learns from at least
# `MIN_SIGNAL_PROMPTS` questions in expectation, choose the one with the most replies carrying a non-zero
# advantage. Set `useful` (a dict G → replies with a non-zero advantage per step, in expectation, for every G
# measured, ints for keys), `signal_prompts` (the same for questions) and `best_group_size`.

# %%
BUDGET = 16  # replies sampled per optimizer step
MIN_SIGNAL_PROMPTS = 1.0  # fewer, and most steps would learn from no question at all
print({g: round(v, 3) for g, v in results["groups"]["zero_std"].items()})
### BEGIN SOLUTION
useful = {int(g): BUDGET * (1 - z) for g, z in results["groups"]["zero_std"].items()}
signal_prompts = {int(g): BUDGET // int(g) * (1 - z) for g, z in results["groups"]["zero_std"].items()}
best_group_size = max((g for g in useful if signal_prompts[g] >= MIN_SIGNAL_PROMPTS), key=lambda g: useful[g])
### END SOLUTION
print(useful, signal_prompts, "->", best_group_size)

# %% course={"grade_id": "q6_group_size", "points": 2}
check.equal("keys", sorted(useful), [2, 4, 8, 16], hint="one entry per measured group size, ints as keys")
check.equal("best_is_measured", best_group_size in useful, True, hint="one of the measured group sizes")
### BEGIN HIDDEN TESTS
check.close("useful_4", useful[4], 16 * (1 - results["groups"]["zero_std"]["4"]), rel_tol=1e-9)
check.close("signal_prompts_8", signal_prompts[8], 2 * (1 - results["groups"]["zero_std"]["8"]), rel_tol=1e-9)
check.equal("best", best_group_size, 4)
### END HIDDEN TESTS

# %% [markdown]
# ## Where this leads
#
# A verifiable reward is a program, and a program has edge cases: what it accepts is what the model will learn
# to produce. GRPO turns rewards into advantages within a group, so a group that agrees teaches nothing, and
# the group size trades prompts per step against the chance that a group has anything to teach.
