# %% [markdown]
# # 07 · Exercises: preference tuning with DPO
#
# Five graded parts, after lesson 07 (11 points in all): sequence log-probabilities over the
# completion, the DPO loss, the implicit reward, reading a training log, and choosing β from the
# measurements of `course dpo`. Runtime: a few seconds on a CPU (a tiny random model and the results
# file; nothing here trains SmolLM2). In each answer cell your code replaces the lines
# `# YOUR CODE HERE` and `raise NotImplementedError()`; the test cell below it says what is wrong.

# %%
import math

import numpy as np
import torch
import torch.nn.functional as F

from course_lib.tuning import dpo
from course_lib.doctor import versions_line
from course_lib.grading import check
from course_lib.models import set_seed, set_threads
from course_lib.notebook import quiet_notebook
from course_lib.results import load_results

set_threads()  # one CPU thread (COURSE_THREADS): the same numbers on every machine
quiet_notebook()  # no progress bars, known notices or DeepSpeed's CPU warning in the saved outputs
print(versions_line())

# %% [markdown]
# ## Part 1 · Sequence log-probabilities over the completion (2 points)
#
# DPO scores a whole answer by log π(y|x): the sum of the log-probabilities of the completion's tokens,
# each predicted from the positions before it. Write `completion_logps(logits, input_ids,
# completion_mask)`: `logits` has shape (N, T, V), `input_ids` and `completion_mask` (1 on completion
# tokens, 0 on prompt and padding) shape (N, T). Token t is predicted by the logits at position t − 1.
# Return a float tensor of shape (N,).

# %%
def completion_logps(logits: torch.Tensor, input_ids: torch.Tensor, completion_mask: torch.Tensor) -> torch.Tensor:
    """(N,) sum over completion tokens of log p(token | everything before it)."""
    ### BEGIN SOLUTION
    logp = logits[:, :-1].float().log_softmax(-1)
    token = torch.gather(logp, 2, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    return (token * completion_mask[:, 1:]).sum(1)
    ### END SOLUTION


# %% course={"grade_id": "q1_completion_logps", "points": 2}
g = torch.Generator().manual_seed(0)
logits = torch.randn(2, 5, 7, generator=g)
ids = torch.tensor([[1, 2, 3, 4, 0], [5, 6, 1, 2, 3]])
mask = torch.tensor([[0, 0, 1, 1, 0], [0, 1, 1, 1, 1]])
out = completion_logps(logits, ids, mask)
check.equal("shape", tuple(out.shape), (2,), hint="one log-probability per sequence: sum over positions")
by_hand = logits[0, 1].log_softmax(-1)[3] + logits[0, 2].log_softmax(-1)[4]
check.close("first_row", out[0].item(), by_hand.item(), rel_tol=1e-5,
            hint="token t is scored by the logits at t − 1; prompt and padding positions (mask 0) count 0")
### BEGIN HIDDEN TESTS
from transformers import LlamaConfig, LlamaForCausalLM

set_seed(0)
tiny = LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                    num_attention_heads=2, num_key_value_heads=2)).eval()
batch = {"input_ids": torch.randint(1, 32, (3, 9), generator=g), "attention_mask": torch.ones(3, 9, dtype=torch.long),
         "completion_mask": torch.tensor([[0] * 4 + [1] * 5, [0] * 6 + [1] * 3, [0] * 2 + [1] * 7])}
with torch.no_grad():
    check.close("same_as_course_lib", (completion_logps(tiny(input_ids=batch["input_ids"]).logits, batch["input_ids"],
                                                        batch["completion_mask"]) - dpo.sequence_logps(tiny, batch)).abs().max().item(),
                0.0, abs_tol=1e-4)
check.close("all_masked", completion_logps(logits, ids, torch.zeros_like(mask)).abs().sum().item(), 0.0, abs_tol=0.0)
### END HIDDEN TESTS

# %% [markdown]
# ## Part 2 · The DPO loss (3 points)
#
# Write `dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta)`: the four arguments
# are (B,) sequence log-probabilities; return the mean over the batch of
# −log σ(β[(log π(y_w) − log π_ref(y_w)) − (log π(y_l) − log π_ref(y_l))]) as a 0-dimensional tensor.
# Use `F.logsigmoid` rather than `log(sigmoid(...))`: for a large negative argument the sigmoid
# rounds to 0 and its log to −inf.

# %%
def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta: float) -> torch.Tensor:
    """Mean DPO loss (Rafailov et al. 2023, eq. 7) of a batch of pairs."""
    ### BEGIN SOLUTION
    logits = beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected))
    return -F.logsigmoid(logits).mean()
    ### END SOLUTION


# %% course={"grade_id": "q2_dpo_loss", "points": 3}
same = torch.tensor([-12.0, -30.0])
check.close("policy_is_reference", dpo_loss(same, same - 5, same, same - 5, 0.1).item(), math.log(2), rel_tol=1e-6,
            hint="when the policy equals the reference every log-ratio is 0, so the loss is −log σ(0) = log 2")
pc, pr, rc, rr = torch.tensor([-10.0]), torch.tensor([-12.0]), torch.tensor([-11.0]), torch.tensor([-11.5])
check.close("one_pair", dpo_loss(pc, pr, rc, rr, 0.5).item(), -math.log(1 / (1 + math.exp(-0.5 * 1.5))), rel_tol=1e-6,
            hint="log-ratios: chosen −10 − (−11) = 1, rejected −12 − (−11.5) = −0.5; β·(1 − (−0.5)) = 0.75")
### BEGIN HIDDEN TESTS
g2 = torch.Generator().manual_seed(1)
args = [-40 * torch.rand(16, generator=g2) for _ in range(4)]
for beta in (0.05, 0.1, 1.0):
    check.close(f"course_lib_beta_{beta}", dpo_loss(*args, beta).item(), dpo.dpo_loss(*args, beta).loss.item(), rel_tol=1e-5)
far = dpo_loss(torch.tensor([-1000.0]), torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([0.0]), 1.0)
check.close("stable", far.item(), 1000.0, rel_tol=1e-4)
check.equal("scalar", tuple(dpo_loss(*args, 0.1).shape), ())
### END HIDDEN TESTS

# %% [markdown]
# ## Part 3 · The implicit reward (2 points)
#
# The sequence log-probabilities of three pairs are below, under the policy after DPO and under the
# reference. With β = 0.1, compute the implicit rewards β·log π/π_ref of the chosen and the rejected
# answers (tensors of shape (3,)), then set `margins` (chosen − rejected, shape (3,)) and `accuracy`
# (a float: the share of pairs whose chosen reward is strictly larger — TRL's `rewards/accuracies`).

# %%
beta = 0.1
policy_chosen, policy_rejected = torch.tensor([-20.0, -35.0, -18.0]), torch.tensor([-60.0, -31.0, -40.0])
ref_chosen, ref_rejected = torch.tensor([-21.0, -34.0, -18.0]), torch.tensor([-55.0, -33.0, -40.0])
### BEGIN SOLUTION
chosen_rewards = beta * (policy_chosen - ref_chosen)
rejected_rewards = beta * (policy_rejected - ref_rejected)
margins = chosen_rewards - rejected_rewards
accuracy = (chosen_rewards > rejected_rewards).float().mean().item()
### END SOLUTION
print("chosen", chosen_rewards, "rejected", rejected_rewards, "margins", margins, "accuracy", accuracy)

# %% course={"grade_id": "q3_implicit_reward", "points": 2}
check.equal("shapes", (tuple(chosen_rewards.shape), tuple(margins.shape)), ((3,), (3,)), hint="one reward per pair")
check.close("first_chosen", chosen_rewards[0].item(), 0.1, rel_tol=1e-5, hint="β·(−20 − (−21)) = 0.1")
### BEGIN HIDDEN TESTS
out = dpo.dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta)
logged = dpo.logged_rewards(out)
check.close("margins", margins.mean().item(), logged["rewards/margins"], abs_tol=1e-6)
check.close("rejected", rejected_rewards.mean().item(), logged["rewards/rejected"], abs_tol=1e-6)
check.close("accuracy", float(accuracy), logged["rewards/accuracies"], abs_tol=1e-9)
check.close("tie_is_not_a_win", float(accuracy), 1 / 3, abs_tol=1e-6)
### END HIDDEN TESTS

# %% [markdown]
# ## Part 4 · Reading a training log (2 points)
#
# `log` below is the validation part of one run of `course dpo` (β = 0.1, seed 0), as TRL logs it. Answer
# from the numbers, not from what DPO is supposed to do:
#
# - `final_margin_nats`: the mean log-ratio margin at the last evaluation, in nats (the logged margin is
#   in β·nats);
# - `answer_chosen`: which is true of the chosen reward at the last evaluation? "A": it rose above 0, so
#   the chosen answers became more likely than under the reference; "B": it fell below 0, so the chosen
#   answers became *less* likely — the margin grew because the rejected ones fell further; "C": it stayed
#   exactly 0.

# %%
results = load_results("dpo")
run = next(r for r in results["runs"] if r["beta"] == 0.1 and r["seed"] == 0)
log = [{"step": s, **{k: run["curve"]["eval"][k][i] for k in ("rewards/chosen", "rewards/rejected",
                                                              "rewards/margins", "rewards/accuracies")}}
       for i, s in enumerate(run["curve"]["eval"]["step"])]
for entry in log:
    print({k: round(v, 4) for k, v in entry.items()})
### BEGIN SOLUTION
final_margin_nats = log[-1]["rewards/margins"] / 0.1
answer_chosen = "A" if log[-1]["rewards/chosen"] > 0 else "B" if log[-1]["rewards/chosen"] < 0 else "C"
### END SOLUTION

# %% course={"grade_id": "q4_read_log", "points": 2}
check.equal("answer_type", isinstance(answer_chosen, str) and answer_chosen in ("A", "B", "C"), True,
            hint='answer_chosen is one of "A", "B", "C"')
check.equal("margin_type", type(final_margin_nats).__name__, "float", hint="a Python float")
check.equal("margin_not_in_beta_nats", final_margin_nats > 2 * log[-1]["rewards/margins"], True,
            hint="rewards are β·log π/π_ref, so the logged margin is in β·nats: how do you get nats?")
### BEGIN HIDDEN TESTS
check.close("margin_nats", final_margin_nats, 6.2775057554245, rel_tol=1e-6)
check.equal("chosen", answer_chosen, "B")
### END HIDDEN TESTS

# %% [markdown]
# ## Part 5 · Decision: which β? (2 points)
#
# You will ship one of the β values `course dpo` tried. Held-out preference accuracy cannot decide: it is
# the same for every β and seed (lesson 07, section 3). What β changes is how far the preference moved and
# how far the model drifted, and three seeds measure both only up to their noise. Your rule, for each β
# over its 3 seeds (standard error of a mean: the sample standard deviation, n − 1, over √3):
#
# 1. a β is over the drift budget only when its mean per-token KL to the reference (key `"kl"` of each
#    run's `"after"`) exceeds `KL_BUDGET` by more than two standard errors;
# 2. among the others, find the largest mean **log-ratio margin** on the held-out pairs, in nats (key
#    `"reward_margins"` of each run's `"after"` is in β·nats); every β whose mean margin is below it by at
#    most two standard errors of the difference (√(se₁² + se₂²)) ties with it;
# 3. of the tied β, ship the largest: it keeps the model closest to the reference.
#
# Set `mean_margin_nats` and `mean_kl` (dicts β → mean over seeds), `tied` (the sorted list of tied β)
# and `best_beta`.

# %%
KL_BUDGET = 0.068  # nats per token: how far from lesson 06's model we accept to drift
### BEGIN SOLUTION
betas = sorted({r["beta"] for r in results["runs"]})
margins = {b: [r["after"]["reward_margins"] / b for r in results["runs"] if r["beta"] == b] for b in betas}
kls = {b: [r["after"]["kl"] for r in results["runs"] if r["beta"] == b] for b in betas}


def standard_error(xs) -> float:
    return float(np.std(xs, ddof=1) / np.sqrt(len(xs)))


mean_margin_nats = {b: float(np.mean(margins[b])) for b in betas}
mean_kl = {b: float(np.mean(kls[b])) for b in betas}
allowed = [b for b in betas if mean_kl[b] - 2 * standard_error(kls[b]) <= KL_BUDGET]
top = max(allowed, key=lambda b: mean_margin_nats[b])
tied = sorted(b for b in allowed if mean_margin_nats[top] - mean_margin_nats[b]
              <= 2 * (standard_error(margins[top]) ** 2 + standard_error(margins[b]) ** 2) ** 0.5)
best_beta = max(tied)
### END SOLUTION
print({b: (round(mean_margin_nats[b], 2), round(mean_kl[b], 4)) for b in mean_margin_nats}, "tied:", tied, "->", best_beta)

# %% course={"grade_id": "q5_choose_beta", "points": 2}
check.equal("betas", sorted(mean_margin_nats), sorted({r["beta"] for r in results["runs"]}),
            hint="one entry per β in the results file")
check.equal("same_keys", sorted(mean_kl), sorted(mean_margin_nats), hint="mean_kl has one entry per β too")
check.equal("best_is_a_beta", best_beta in mean_kl, True, hint="best_beta is one of the β the run tried")
check.equal("best_is_tied", best_beta in tied, True, hint="best_beta is one of the tied β")
### BEGIN HIDDEN TESTS
check.close("margin_nats_0.5", mean_margin_nats[0.5], 6.2712, abs_tol=5e-4)
check.close("kl_0.1", mean_kl[0.1], 0.066644, abs_tol=5e-6)
check.equal("tied", tied, [0.05, 0.1])
check.equal("best_beta", best_beta, 0.1)
### END HIDDEN TESTS

# %% [markdown]
# ## Where this leads
#
# DPO is a classification loss on log-ratios to a reference: its rewards are relative, its margins scale
# with β, and its accuracy can rise while the chosen answers themselves become less likely. Judge a run
# by held-out pairs, the drift from the reference and the answers it generates, not by the training loss.
