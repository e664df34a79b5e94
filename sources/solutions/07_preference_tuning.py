# %% [markdown]
# # 07 · Exercises: preference tuning with DPO
#
# Five graded parts, after lesson 07 (11 points in all): an on-policy pair from sampled answers and a
# scoring rule, sequence log-probabilities over the completion, the DPO loss, the win rate's standard error
# and interval, and a decision read from the results of lesson 07's runs. Runtime: a few seconds on a CPU
# (a tiny random model, the shipped pairs and the results files; nothing here trains SmolLM2). In each
# answer cell your code replaces the lines `# YOUR CODE HERE` and `raise NotImplementedError()`; the test
# cell below it says what is wrong.

# %%
import copy
import math

import torch
import torch.nn.functional as F

from course_lib.doctor import versions_line
from course_lib.grading import check
from course_lib.models import set_seed, set_threads
from course_lib.notebook import quiet_notebook
from course_lib.results import load_results
from course_lib.tuning import dpo, pairs

set_threads()  # one CPU thread (COURSE_THREADS): the same numbers on every machine
quiet_notebook()  # no progress bars, known notices or DeepSpeed's CPU warning in the saved outputs
print(versions_line())

# %% [markdown]
# ## Part 1 · An on-policy pair (2 points)
#
# `course dpo-pairs` sampled several answers per prompt from lesson 06's model and kept the best and the
# worst by a rule. Write `make_pair(prompt, reference, samples, score)`: score every sample with
# `score(sample, prompt, reference)`, and return `{"prompt": prompt, "chosen": ..., "rejected": ...}` with
# the best-scored sample as chosen and the worst as rejected (the first one in `samples` when several share
# the best, or the worst, score) — or `None` when every sample scores the same, since such a prompt teaches
# no preference.

# %%
def make_pair(prompt: str, reference: str, samples: list[str], score) -> dict | None:
    """The best and the worst of `samples` by `score`, or None when they all tie."""
    ### BEGIN SOLUTION
    scores = [score(s, prompt, reference) for s in samples]
    if max(scores) == min(scores):
        return None
    return {"prompt": prompt, "chosen": samples[scores.index(max(scores))],
            "rejected": samples[scores.index(min(scores))]}
    ### END SOLUTION


# %% course={"grade_id": "q1_on_policy_pair", "points": 2}
by_length = lambda answer, prompt, reference: -abs(len(answer) - len(reference))  # noqa: E731 - a toy rule
pair = make_pair("p", "four", ["one", "three", "zero", "seventeen"], by_length)
check.equal("type", type(pair).__name__, "dict", hint="return a dict with prompt, chosen and rejected")
check.equal("keys", sorted(pair), ["chosen", "prompt", "rejected"])
check.equal("tied", make_pair("p", "x", ["a.", "b."], lambda *args: 0.5), None,
            hint="when every sample scores the same there is nothing to prefer: return None")
### BEGIN HIDDEN TESTS
check.equal("toy", (pair["chosen"], pair["rejected"]), ("zero", "seventeen"))
check.equal("first_of_equals", make_pair("p", "ab", ["xy", "z", "uv", "q"], by_length),
            {"prompt": "p", "chosen": "xy", "rejected": "z"})
row = pairs.sample_rows("train")[0]
shipped = pairs.on_policy_rows("train")[0]
mine = make_pair(row["prompt"], row["reference"], row["samples"], pairs.docstring_score)
check.equal("shipped_pair", (mine["chosen"], mine["rejected"]), (shipped["chosen"], shipped["rejected"]))
### END HIDDEN TESTS

# %% [markdown]
# ## Part 2 · Sequence log-probabilities over the completion (2 points)
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


# %% course={"grade_id": "q2_completion_logps", "points": 2}
g = torch.Generator().manual_seed(0)
logits = torch.randn(2, 5, 7, generator=g)
ids = torch.tensor([[1, 2, 3, 4, 0], [5, 6, 1, 2, 3]])
mask = torch.tensor([[0, 0, 1, 1, 0], [0, 1, 1, 1, 1]])
out = completion_logps(logits, ids, mask)
check.equal("shape", tuple(out.shape), (2,), hint="one log-probability per sequence: sum over positions")
last_changed = logits.clone()
last_changed[:, -1] += 5 * torch.randn(2, 7, generator=g)
check.close("last_position_unused", (completion_logps(last_changed, ids, mask) - out).abs().max().item(), 0.0,
            abs_tol=1e-6, hint="the logits at the last position predict a token after the sequence: nothing to score")
### BEGIN HIDDEN TESTS
by_hand = logits[0, 1].log_softmax(-1)[3] + logits[0, 2].log_softmax(-1)[4]
check.close("first_row", out[0].item(), by_hand.item(), rel_tol=1e-5)
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
# ## Part 3 · The DPO loss (3 points)
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


# %% course={"grade_id": "q3_dpo_loss", "points": 3}
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
# ## Part 4 · A win rate and its uncertainty (2 points)
#
# Comparing two models' answers to n prompts gives one outcome per prompt: 1 (the new answer wins), ½ (a
# tie), 0 (it loses). Write `win_rate_with_error(outcomes)`: return the win rate (the mean outcome), its
# standard error (the sample standard deviation of the outcomes, with n − 1, divided by √n) and the 95 %
# interval (win rate ± 1.96 standard errors) as a tuple `(rate, se, (low, high))` of floats. With ties,
# √(p(1 − p)/n) is not the standard deviation of the outcomes.

# %%
def win_rate_with_error(outcomes: list[float]) -> tuple[float, float, tuple[float, float]]:
    """Mean outcome, its standard error over the prompts, and the 95 % interval."""
    ### BEGIN SOLUTION
    n = len(outcomes)
    rate = sum(outcomes) / n
    se = math.sqrt(sum((x - rate) ** 2 for x in outcomes) / (n - 1)) / math.sqrt(n)
    return rate, se, (rate - 1.96 * se, rate + 1.96 * se)
    ### END SOLUTION


# %% course={"grade_id": "q4_win_rate_error", "points": 2}
rate, se, interval = win_rate_with_error([1.0, 0.0, 1.0, 1.0])
check.equal("types", [type(rate).__name__, type(se).__name__, type(interval).__name__], ["float", "float", "tuple"])
check.close("rate", rate, 0.75, rel_tol=1e-9, hint="the win rate is the mean outcome")
check.equal("interval_around_rate", interval[0] < rate < interval[1], True, hint="rate ± 1.96·se")
### BEGIN HIDDEN TESTS
check.close("se_no_ties", se, 0.25, rel_tol=1e-9)
ties = [1.0, 0.5, 0.5, 0.0, 1.0, 0.5, 1.0, 0.5]
r, s, (lo, hi) = win_rate_with_error(ties)
w = pairs.win_rate(ties)
check.close("se_with_ties", s, w["se"], rel_tol=1e-9)
check.close("low", lo, w["ci95"][0], rel_tol=1e-9)
dpo_file = load_results("dpo")
seed0 = dpo_file["runs"][0]["after"]
check.close("seed0_se", win_rate_with_error(seed0["outcomes"])[1], seed0["win_rate"]["se"], rel_tol=1e-9)
### END HIDDEN TESTS

# %% [markdown]
# ## Part 5 · Decision: which run would you ship? (2 points)
#
# `course dpo-sweep` trained several arms (an objective at a learning rate, seed 0) and measured each on
# the validation prompts (lesson 07, section 3). Suppose the behaviour you want from preference tuning is answers
# that name the function's parameters (`run["after"]["names"]`: the share of them a run's answers name) — but
# not at the price of answers the whole rule scores worse. Your rule, a *non-inferiority* test that takes the
# noise of 24 prompts into account:
#
# - an arm is **admissible** when it is not measurably worse than lesson 06's answers: the upper end of the
#   95 % interval of its win rate, `win_rate + 1.96 · se` (`run["after"]["win_rate"]`), is at least 0.5;
# - among admissible arms, ship the one whose answers name the most parameters; if two name exactly as many,
#   ship the one that drifted less from lesson 06's model (the lower `run["after"]["kl"]`).
#
# The share of parameters named is measured on the same 24 prompts and has noise of its own; the rule
# ranks by its point estimate all the same, so a close second is a choice the rule makes, not a finding.
#
# Label each arm `f"{run['loss']}@{run['learning_rate']:g}"` (for example `"dpo@0.0001"`). Write
# `ship(runs)`: from a list of runs shaped like `sweep["runs"]`, return `(admissible, best_arm)` — the sorted
# list of admissible labels, and the label to ship. The tests also call it on other tables.

# %%
sweep = load_results("dpo_sweep")
label = lambda run: f"{run['loss']}@{run['learning_rate']:g}"  # noqa: E731
for run in sweep["runs"]:
    a = run["after"]
    print(f"{label(run):15s} names {a['names']:.3f}  KL {a['kl']:.4f}  win rate {a['win_rate']['win_rate']:.3f} ± "
          f"{a['win_rate']['se']:.3f}")


def ship(runs: list[dict]) -> tuple[list[str], str]:
    """The admissible arms (sorted) and the one to ship, by the rule above."""
    ### BEGIN SOLUTION
    upper = {label(r): r["after"]["win_rate"]["win_rate"] + 1.96 * r["after"]["win_rate"]["se"] for r in runs}
    admissible = sorted(arm for arm, u in upper.items() if u >= 0.5)
    names = {label(r): r["after"]["names"] for r in runs}
    kl = {label(r): r["after"]["kl"] for r in runs}
    best_arm = max(admissible, key=lambda arm: (names[arm], -kl[arm]))
    return admissible, best_arm
    ### END SOLUTION


admissible, best_arm = ship(sweep["runs"])

# %% course={"grade_id": "q5_ship_a_run", "points": 2}
arms = [label(r) for r in sweep["runs"]]
check.equal("admissible_type", type(admissible).__name__, "list", hint="a list of labels like 'dpo@0.0001'")
check.equal("admissible_are_arms", all(a in arms for a in admissible), True, hint="labels of the arms in the file")
check.equal("best_is_admissible", best_arm in admissible, True, hint="ship an admissible arm")
### BEGIN HIDDEN TESTS
check.equal("admissible", admissible, ["dpo+sft@0.0001", "dpo+sft@0.0003", "dpo+sft@0.001", "dpo@0.0003", "dpo@1e-06"])
check.equal("best_arm", best_arm, "dpo+sft@0.0003")
# the two arms that name the most parameters, with their drifts swapped: the tie now goes to the other one
swapped = copy.deepcopy(sweep["runs"])
tied = {label(r): r for r in swapped if label(r) in ("dpo+sft@0.0003", "dpo+sft@0.001")}
tied["dpo+sft@0.0003"]["after"]["kl"], tied["dpo+sft@0.001"]["after"]["kl"] = (
    tied["dpo+sft@0.001"]["after"]["kl"], tied["dpo+sft@0.0003"]["after"]["kl"])
check.equal("best_arm_when_the_drifts_swap", ship(swapped)[1], "dpo+sft@0.001")
check.equal("best_arm_in_any_order", ship(swapped[::-1]), ship(swapped))
### END HIDDEN TESTS

# %% [markdown]
# ## Where this leads
#
# DPO is a classification loss on log-ratios to a reference: its rewards are relative, its margins scale
# with β, and it moves the model only as far as its pairs and learning rate let it. Build pairs from the
# model's own answers, judge a run by the answers it generates against the model it started from, with the
# uncertainty of a few dozen prompts, and watch the chosen answers' likelihood as well as the margin.
