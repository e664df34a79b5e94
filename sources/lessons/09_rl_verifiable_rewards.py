# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 09 · Reinforcement learning with verifiable rewards: GRPO on a CPU
#
# **Goal.** Teach SmolLM2-135M-Instruct a skill with no teacher answers at all, only a program that says
# *right* or *wrong*: sample several replies per question, reward each one by checking it, and push the model
# towards the replies that beat their siblings. This is GRPO, Group Relative Policy Optimization (Shao et al.
# 2024, DeepSeekMath), the method DeepSeek-R1 (DeepSeek-AI 2025) used to teach reasoning with rule-based
# rewards. You will choose a task by measurement, write the group-relative advantage and the loss by hand and
# prove them equal to TRL's `GRPOTrainer`, watch the learning signal vanish when a group agrees, catch a
# model exploiting a flawed reward, and compare GRPO with the simplest alternative, fine-tuning on the model's
# own correct samples.
#
# **Runtime.** About a minute on a 2-core CPU. The long runs (candidate tasks, group sizes,
# learning-rate sweeps, 3 seeds of GRPO, the flawed reward, rejection sampling) are `course grpo`; it wrote
# `data/results/grpo.json`, which this notebook reads and plots. Live, it trains two GRPO steps and checks the
# loss against TRL's.
#
# **Model.** `smollm2-135m-instruct` unless `COURSE_MODEL` names another model with a chat template.
#
# **You will use** `course_lib.tuning.grpo` (the rewards, the advantages, the loss, the timed trainer), TRL's
# `GRPOTrainer` and `SFTTrainer`, peft's LoRA.

# %%
from course_lib.notebook import quiet_notebook

quiet_notebook()  # first: peft, imported below, loads bitsandbytes, whose CPU notice this keeps out of the page

import inspect
import tempfile

import matplotlib.pyplot as plt
import numpy as np
import torch
from transformers import PrinterCallback

from course_lib.data import verifiable_rows
from course_lib.doctor import versions_line
from course_lib.experiments.grpo import interval95
from course_lib.models import load_base_model, load_tokenizer, set_seed, set_threads
from course_lib.notebook import below
from course_lib.results import load_results, require_results
from course_lib.tuning import grpo, sft

set_threads()  # one CPU thread (COURSE_THREADS): the same numbers on every machine
print(versions_line())
require_results("grpo")  # what this lesson reads, checked before anything slow
sft.require_chat_template(sft.lesson_model())
results = load_results("grpo")
cfg = results["config"]

# %% [markdown]
# ## 1 · A reward a program checks
#
# Reinforcement learning needs a reward for every reply the model samples. RLHF learns one from human
# comparisons (lesson 07); *verifiable* rewards skip that model: where the answer can be checked — a number, a
# unit test, a proof checker — a short program is the reward, and it cannot be flattered. The catch is that the
# model must already be right *sometimes*: a reward that is always 0 teaches nothing. So the task is chosen by
# measurement. `course build-data` wrote three candidates to `data/verifiable/` (its data card lists how they
# are built and split), and `course grpo` asked the instruct model each held-out question once, greedily, within
# the same budget of tokens GRPO will sample:

# %%
print(f"{'task':16s} {'held-out':>9s} {'greedy accuracy':>16s} {'a constant reply':>17s}")
for task, b in results["base_rates"].items():
    print(f"{task:16s} {b['n']:9d} {b['accuracy']:16.3f} {b['constant_reply_accuracy']:17.3f}  "
          f"(always {b['constant_reply']!r})")
for task, b in results["base_rates"].items():
    prompt, reply = b["examples"][0]
    print(f"\n[{task}] {prompt!r}\n  -> {reply!r}")

# %% [markdown]
# Two candidates leave nothing to learn from. The model almost never adds two two-digit numbers right in the
# budget (0.050), and it never answers the parameter count with a number: it writes "takes a single parameter",
# which a checker of digits scores 0 (0.000), while the constant reply "1" would score 0.367 — a reward that
# rarely fires, or one a constant could collect, is not a task to train on. The times table, at 0.267, lies
# between 10 % and 60 %: a signal exists and there is room to climb. Its failures are mostly *form*, not
# knowledge: the model starts "To calculate 4 * 13, you simply multiply" and runs out of tokens before the
# product. That reading, and the base rate itself, depend on the budget of 12 tokens: `course grpo` measured no
# larger budget and no prompt asking for the number only, so how much of the 0.267 is the budget and how much
# the model's arithmetic is not measured here — a confound to keep in mind for everything that follows. The factors run from 2 to 15, so some facts are beyond it too (14 * 14, in section 5).
#
# The checker reads the reply's **final number** and compares it with the product. A reply may show its work
# (`7 * 8 = 56`), but what it ends on is its answer, and a reply cut off by the token budget before the answer
# is wrong:

# %%
print(inspect.getsource(grpo.final_number))
print(inspect.getsource(grpo.checked_reward))
tests = ["7 * 8 = 56", "56", "7 * 8 = 56.\n\nThis is 8 more than 48", "To calculate 7 * 8, we need to"]
for reply, r in zip(tests, grpo.checked_reward(tests, ["56"] * len(tests))):
    print(f"{r:.0f}  {reply!r}")

# %% [markdown]
# ## 2 · GRPO: rewards relative to the group
#
# For each question q, GRPO samples a **group** of G replies o_1 … o_G from the current policy and scores each
# with the reward r_i. Each reply's **advantage** is its reward measured against its siblings (Shao et al.
# 2024, §4.1): A_i = (r_i − mean(r)) / std(r). A reply better than the group's average is pushed up, a worse
# one down — no learned value model (PPO's critic) estimates a baseline; the group *is* the baseline. Every
# token of o_i shares the same A_i.
#
# TRL's `scale_rewards` chooses the denominator: `"group"` (the default, the paper's) divides by the group's
# standard deviation, `"batch"` by the whole batch's, `"none"` not at all, as Liu et al. (2025, "Understanding
# R1-Zero-Like Training", Dr. GRPO) recommend: dividing by a group's std up-weights the questions that are
# almost always right, or almost always wrong, against the others: their std is small. TRL adds 1e-4 to the
# std and uses the sample standard deviation (n − 1), as `group_advantages` does:

# %%
print(inspect.getsource(grpo.group_advantages))
rewards = torch.tensor([1.0, 0.0, 0.0, 0.0,   1.0, 1.0, 0.0, 0.0,   1.0, 1.0, 1.0, 1.0])  # 3 prompts, G = 4
for scale in ("group", "batch", "none"):
    print(f"scale_rewards={scale!r:8s}", np.round(grpo.group_advantages(rewards, 4, scale).numpy(), 3))

# %% [markdown]
# The third group is all right: its advantages are 0 whatever the scaling, and it teaches nothing (section 5).
# The first group's one right answer gets +1.5 under group scaling and only +0.75 unscaled, while the second
# group's right answers get +0.866 against +0.5: dividing by the group's std magnifies rare events.
#
# **The loss.** GRPO keeps PPO's clipped surrogate (Schulman et al. 2017). Per token,
# with the ratio ρ_t = π_θ(o_t | q, o_<t) / π_old(o_t | q, o_<t) to the policy that sampled the group,
#
# $$\ell_t = -\min\big(\rho_t A_i,\ \mathrm{clip}(\rho_t, 1-\varepsilon, 1+\varepsilon)\, A_i\big) + \beta\,\rho_t\,\Big(\tfrac{\pi_\text{ref}}{\pi_\theta} - \log\tfrac{\pi_\text{ref}}{\pi_\theta} - 1\Big)$$
#
# The bracket is the KL estimator the paper uses (Shao et al. 2024, §4.1), non-negative for every token. The
# paper adds β·KL_t; TRL multiplies it by the ratio ρ_t as well — a surprise in the library, not in the
# paper: `GRPOConfig.use_bias_correction_kl`, on by default in trl 1.16, whose docstring cites DeepSeek-V3.2
# (DeepSeek-AI 2025, in docs/references.md): weighted so, the KL term's gradient is the unbiased gradient of
# the reverse KL. On-policy ρ_t = 1, so the loss's value does not change, but its gradient does, and the `kl`
# TRL logs is ρ_t·KL_t. `grpo_loss` follows TRL (`bias_correction_kl=True`). The token losses are then
# averaged, and *how* is what TRL's `loss_type` chooses:
#
# - `grpo`: the mean over each reply's own tokens, then over replies (the paper's objective);
# - `dapo` (TRL 1.16's default; Yu et al. 2025): the sum over every token of the batch, divided by their number;
# - `dr_grpo` (Liu et al. 2025): the sum divided by a constant, the number of replies × `max_completion_length`.
#
# `grpo_loss` is those lines, written out:

# %%
print(inspect.getsource(grpo.grpo_loss))

# %% [markdown]
# **What the normalisation does to short and long replies.** Take two replies with the same advantage, one of
# 2 tokens and one of 8, and ask how much each *token* weighs in the gradient (∂loss / ∂log π of one token):

# %%
mask = torch.tensor([[1.0] * 2 + [0.0] * 6, [1.0] * 8])  # a 2-token and an 8-token reply, one group
logps = torch.zeros(2, 8, requires_grad=True)
print(f"{'loss_type':10s} {'per token, short':>17s} {'per token, long':>16s} {'whole short reply':>18s} {'whole long reply':>17s}")
for loss_type in ("grpo", "dapo", "dr_grpo"):
    for sign in (1.0, -1.0):
        out = grpo.grpo_loss(logps, logps.detach(), torch.tensor([sign, sign]), mask, loss_type=loss_type,
                             max_completion_length=8)
        g = -torch.autograd.grad(out.loss, logps)[0]  # the push on each token's log-probability
        print(f"{loss_type + (' A>0' if sign > 0 else ' A<0'):10s} {g[0, 0].item():17.4f} {g[1, 0].item():16.4f} "
              f"{g[0].sum().item():18.4f} {g[1].sum().item():17.4f}")

# %% [markdown]
# Under `grpo` each reply gets the same total push (0.5), whatever its length, so a token of the short reply
# weighs 4 times a token of the long one (0.25 against 0.0625): a short right reply is reinforced hard per
# token, a long wrong one punished only a little per token — the bias toward long wrong answers that Liu et al.
# (2025) point out. `dapo` and `dr_grpo` give every token the same weight, so a reply's total push grows with
# its length; they differ in the constant: the batch's token count (2 + 8 = 10 tokens, weight 0.1 each) against
# the number of replies × `max_completion_length` (2 × 8 = 16, weight 0.0625 each).

# %% [markdown]
# ## 3 · Two GRPO steps with TRL, and the loss by hand
#
# The run: TRL's `GRPOTrainer` with a fresh LoRA adapter (as in lessons 06 and 07), generating with
# transformers' `generate` on the CPU. `grpo.grpo_trainer` subclasses it only to time the generation and keep
# each step's replies. On a CPU two of `GRPOConfig`'s defaults must change (trl 1.16's `_BaseConfig`): `bf16`,
# which it turns on whenever `fp16` is off, and gradient checkpointing, on by default; `to_grpo_config` turns
# both off. TRL logs, per step, `reward` (the weighted sum), `rewards/<function>/mean`, `frac_reward_zero_std`,
# `completions/mean_length`, `entropy`, `clip_ratio/*` and `step_time`. Live, two steps of one question and a
# group of 4 (the long runs use 2 questions × 4):

# %%
name = sft.lesson_model()
tokenizer = load_tokenizer(name)
train = verifiable_rows(cfg["task"], "train")
live = grpo.GRPORunConfig(max_steps=2, prompts_per_step=1, num_generations=4,
                          learning_rate=results["grpo"]["learning_rate"])
set_seed(0)
trainer = grpo.grpo_trainer(load_base_model(name), tokenizer, train, live, tempfile.mkdtemp(), seed=0)
trainer.remove_callback(PrinterCallback)  # the log is read from trainer.state below, rounded
print(f"loss_type {trainer.loss_type!r}, scale_rewards {trainer.scale_rewards!r}, β = {trainer.beta}, "
      f"temperature {trainer.temperature}, ε = {trainer.epsilon_low}; a reference model loaded: "
      f"{trainer.ref_model is not None}")
trainer.train()
for step, sample in enumerate(trainer.samples, 1):
    print(f"\nstep {step}: mean reward {np.mean(sample['rewards']['checked_reward']):.2f}")
    for reply, r, a in zip(sample["completions"], sample["rewards"]["checked_reward"], sample["advantages"]):
        print(f"  r={r:.0f}  A={a:+.3f}  {reply!r}")

# %% tags=["nbval-ignore-output"]
curve = grpo.log_curve(trainer.state.log_history)
for s, total, gen in zip(curve["step"], curve["step_time"], curve["generation_time"]):
    print(f"step {s}: {total:.1f} s, of which generating {gen:.1f} s")

# %% [markdown]
# TRL's batch of the last step (`trainer.last_batch`: prompt and completion ids, masks, advantages) goes through
# TRL's own `compute_loss` and through `grpo_loss`. With one update per batch (TRL's default `num_iterations=1`)
# the sampling policy *is* the current one when TRL computes the loss, so the ratio is exactly 1; to check the
# ratio and the KL term with other values than 1 and 0, we treat the batch as if it had been sampled by the
# untuned model (the adapter off), two optimizer steps ago, and use that same model as the reference for β > 0. The loss types are TRL's attributes
# `loss_type` and `beta`, which its `_compute_loss` reads:

# %%
model = trainer.model.eval()
batch = dict(trainer.last_batch)
last = trainer.samples[-1]["rewards"]["checked_reward"]  # the last step's rewards, in TRL's order
adv_diff = (grpo.group_advantages(torch.tensor(last), trainer.num_generations, trainer.scale_rewards)
            - batch["advantages"]).abs().max().item()
print(f"advantages of the last step: max |by hand − TRL| {below(adv_diff, 1e-6)}")
assert adv_diff < 1e-6
with torch.no_grad():
    with model.disable_adapter():
        untuned = grpo.completion_logps(model, batch, trainer.temperature)
    batch["old_per_token_logps"] = batch["ref_per_token_logps"] = untuned
    mine_logps = grpo.completion_logps(model, batch, trainer.temperature)
    print(f"{'loss_type':9s} {'β':>5s} {'by hand':>9s} {'TRL':>9s} {'clipped tokens':>15s} {'|diff| if the KL had no ρ':>26s}")
    diffs = []
    for loss_type, beta in (("dapo", 0.0), ("grpo", 0.04), ("dr_grpo", 0.0), ("grpo", 1.0)):
        trainer.loss_type, trainer.beta = loss_type, beta
        theirs = trainer.compute_loss(model, batch).item()
        mine, paper = (grpo.grpo_loss(mine_logps, untuned, batch["advantages"], batch["completion_mask"],
                                      loss_type=loss_type, epsilon=trainer.epsilon_low, beta=beta, ref_logps=untuned,
                                      max_completion_length=live.max_completion_length,
                                      num_items=batch["num_items_in_batch"].item(), bias_correction_kl=corrected)
                       for corrected in (trainer.args.use_bias_correction_kl, False))
        diffs.append(abs(mine.loss.item() - theirs))
        gap = below(abs(paper.loss.item() - theirs), 1e-5) if beta else "(no KL term)"
        print(f"{loss_type:9s} {beta:5.2f} {mine.loss.item():9.4f} {theirs:9.4f} {mine.clip_ratio:15.3f} {gap:>26s}")
print(f"use_bias_correction_kl = {trainer.args.use_bias_correction_kl}; max |by hand − TRL| {below(max(diffs), 1e-5)}")
assert max(diffs) < 1e-5

# %% [markdown]
# The hand-written loss equals TRL's within the bound printed, for each loss type, the KL term included (the β
# rows), and so do the advantages. The last column is the same comparison with the paper's β·KL_t, without
# TRL's ρ_t: at β = 0.04 the difference hides under the bound of float32 rounding; at β = 1 it does not, which
# is why that row is there — it is what shows that TRL weights the KL by the ratio.
#
# The clip did not act (no clipped token in any row): after two small steps no token's ratio to the untuned
# model left 1 ± ε. In TRL's own training step it cannot act at all: with one update per batch (`num_iterations=1`,
# the default) TRL takes the current log-probabilities, detached, as π_old (`_compute_loss`), so ρ_t is exactly
# 1 in value — only its gradient, that of log π_θ, is left. The clip matters when a batch is reused
# (`num_iterations` > 1). tests/test_grpo.py checks the loss, the clipped share, the logged KL and the
# advantages against TRL's with an older policy whose ratios do leave the range, on a tiny random model and a
# reward that varies on it, for five settings. Note the temperature: TRL scores the completion tokens with the
# logits divided by the sampling temperature, so the policy it trains is the one it sampled from.
#
# **β and the reference model.** trl 1.16 defaults to `beta=0.0`: its docstring says the reference model is
# then not loaded, and the trainer above has none (`ref_model` is None, printed). With β > 0 and a LoRA adapter
# TRL still loads none — the reference is the adapter switched off, as DPO's was in lesson 07 — but it runs one
# more forward pass per step; without LoRA it loads a second copy of the model. `course grpo` measured both:

# %%
cost = results["beta_cost"]
probe = next(k for k in cost if not k.startswith("full_") and float(k) > 0)
for beta in ("0.0", probe):
    step, gen = np.mean(cost[beta]["step_time"]), np.mean(cost[beta]["generation_time"])
    print(f"β = {beta}: {step:.1f} s per step: generating {gen:.1f} s, the rest {step - gen:.1f} s "
          f"(mean of {len(cost[beta]['step_time'])} steps after a first one)")
print(f"full fine-tuning with β = {probe}: TRL's reference model holds {cost['full_ref_parameters']:,} parameters, "
      f"{cost['full_ref_bytes'] / 1e6:.0f} MB of float32 (computed from the parameter count); the process's resident "
      f"memory grew by {cost['full_rss_growth_bytes'] / 1e6:.0f} MB while that trainer was built")

# %% [markdown]
# With LoRA, β > 0 loads no second model (the reference is the adapter switched off) and adds one forward pass
# per step. The step times printed do not isolate that pass: they are two steps each on a shared CPU, and
# generation, which β does not touch, moved about as much as the rest. Without LoRA, TRL holds a frozen copy of
# every weight: 538 MB here by the parameter count. The resident memory measured beside it grew far less, so
# that measurement does not show the copy: the process had freed the models of the runs before it and could
# reuse that memory (a fresh process would be needed to see it). For a 7B model in 16-bit, two bytes per
# parameter, the copy is 2 × 7 = 14 GB.
#
# DeepSeekMath trained with the KL term (Shao et
# al. 2024) and TRL's docstring notes that DeepSeek-R1 used β = 0.001; DAPO (Yu et al. 2025) removes it for
# verifiable rewards, TRL defaults to 0.0, and so do our runs.
#
# ## 4 · The long run: the reward rises, and held-out accuracy with it
#
# `course grpo` trained 3 seeds with TRL's defaults for the loss (`dapo`, `scale_rewards="group"`, β = 0),
# at a learning rate chosen by a short sweep on the validation questions, and answered the held-out questions
# greedily after. The sweep was short — two learning rates for half the steps, on the validation questions:

# %%
runs = results["grpo"]["runs"]
sweep = results["sweep"]
print(f"grpo.json: made by `{results['command']}` on {results['model']}, {results['wall_seconds'] / 60:.0f} min in all")
print(f"task {cfg['task']!r}: {len(train)} training questions; G = {cfg['num_generations']} replies per question, "
      f"{cfg['prompts_per_step']} questions per step, at most {cfg['max_completion_length']} tokens, temperature "
      f"{cfg['temperature']}; {cfg['max_steps']} steps; LoRA r={cfg['r']}, alpha {cfg['lora_alpha']:g}")
print("LR sweep (" + f"{cfg['sweep_steps']} steps, seed {cfg['seeds'][0]}, {cfg['validation_rows']} validation questions): "
      + ", ".join(f"{r['learning_rate']:g} -> {r['after']['accuracy']:.2f}" for r in sweep["runs"])
      + f"; chosen {results['grpo']['learning_rate']:g}")
v = sweep["runs"][0]["after"]["accuracy"]
print(f"standard error of one accuracy on {cfg['validation_rows']} questions near {v:.2f}: "
      f"{np.sqrt(v * (1 - v) / cfg['validation_rows']):.2f}")

# %%
steps = runs[0]["curve"]["step"]
reward = np.array([r["curve"]["reward"] for r in runs])
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
for r, run in zip(reward, runs):
    axes[0].plot(steps, r, alpha=0.35, label=f"seed {run['seed']}")
axes[0].plot(steps, reward.mean(0), "k-o", label="mean of the seeds")
axes[0].set(title="GRPO: mean checked reward of each step's samples", xlabel="optimizer step",
            ylabel="share of sampled replies right")
axes[0].legend()
before = results["base_rates"][cfg["task"]]["accuracy"]
after = [r["after"]["accuracy"] for r in runs]
axes[1].bar(["before (untuned)"] + [f"after, seed {r['seed']}" for r in runs], [before] + after,
            color=["grey"] + ["tab:blue"] * len(runs))
axes[1].set(title=f"greedy accuracy on {cfg['test_rows']} held-out questions", ylabel="share right")
plt.tight_layout()
plt.show()
mean, half = interval95([a - before for a in after])
print(f"held-out accuracy: before {before:.3f}; after {np.mean(after):.3f} (seeds: {', '.join(f'{a:.3f}' for a in after)})")
print(f"change {mean:+.3f}, 95 % interval [{mean - half:+.3f}, {mean + half:+.3f}] (Student's t, {len(after)} seeds)")
n_test = cfg["test_rows"]
print(f"standard error of one accuracy on the same {n_test} questions, √(p(1−p)/n): before "
      f"{np.sqrt(before * (1 - before) / n_test):.3f}, after {np.sqrt(np.mean(after) * (1 - np.mean(after)) / n_test):.3f}")

# %% [markdown]
# The reward of the sampled replies climbs — noisily, since each step asks two new questions, some easy
# (10 * 4) and some the model does not know (14 * 14) — and greedy accuracy on the held-out questions rose in
# every seed; the interval over the 3 seeds excludes zero. That interval covers the seeds only: every seed
# answered the same 60 questions, and each accuracy on them carries its own sampling error (the standard
# errors printed), which a new set of questions would show; the rise is several of those wide. The sweep
# tied (0.60 for both rates, within a standard error of 0.10 on 25 questions) and the tie went to the smaller
# rate: a reasonable rate, not one shown to be the best. The replies show what was learned: they now *start*
# with the equation (`4 * 13 = 52`) where the untuned model started to explain, so the answer fits in the
# budget. Facts the model lacked stay wrong (`9 * 13 = 108`): 16 steps of 8 samples teach the model to use
# what it knows, not the times table.
#
# **Where the time goes.** TRL logs each step's `step_time`; the trainer adds the seconds spent in generation:

# %%
gen = np.array([r["curve"]["generation_time"] for r in runs])
total = np.array([r["curve"]["step_time"] for r in runs])
print(f"per step, mean over {gen.size} steps: {total.mean():.1f} s, of which generating {gen.mean():.1f} s "
      f"({gen.sum() / total.sum():.0%}) and the rest {total.mean() - gen.mean():.1f} s (the rewards, the forward and "
      "backward passes; TRL's step_time times its training_step, the optimizer step is outside it)")

# %% [markdown]
# About half the time of a step is generation, not most of it: the replies are short (at most 12 tokens)
# and each step also runs the forward and backward pass over the prompt and the reply of all 8 samples. With
# longer replies generation grows fastest — every new token is one more sequential pass through the model —
# which is why GPU recipes hand it to a dedicated engine (vLLM). Here the measured step time is what sized the
# runs: 16 steps × 3 seeds, plus the sweeps and the comparisons, in one command on one shared core (it took
# 46 min, printed above).
#
# ## 5 · When the signal vanishes
#
# If every reply in a group gets the same reward, every advantage is 0 and the group contributes nothing to
# the gradient: the step spends its generation on it for nothing. TRL logs the share of such groups as
# `frac_reward_zero_std`. For a question the model answers right with probability p, a group of G independent
# replies agrees with probability p^G + (1 − p)^G: all right or all wrong. `course grpo` sampled 16 replies to
# each of 16 training questions from the untuned model and cut them into groups of 2, 4, 8 and 16:

# %%
groups = results["groups"]
checked = np.array(groups["rewards"]["checked"])  # (questions, 16)
p = checked.mean(1)
print("pass rate per question (16 samples each):", " ".join(f"{x:.2f}" for x in sorted(p)))
print(f"\n{'G':>3s} {'groups that agree (measured)':>29s} {'p^G + (1-p)^G (mean over questions)':>37s}")
for g, measured in groups["zero_std"].items():
    print(f"{g:>3s} {measured:29.3f} {np.mean([grpo.zero_std_probability(x, int(g)) for x in p]):37.3f}")
zero = np.array([r["curve"]["frac_reward_zero_std"] for r in runs])
print(f"\nduring training (G = {cfg['num_generations']}): share of groups that agree, per step, mean of the seeds:",
      " ".join(f"{x:.2f}" for x in zero.mean(0)))

# %% [markdown]
# On the untuned model, a group of 4 agrees about two times in three: most questions are either out of its
# reach (pass rate 0: 14 * 14) or already within it. Larger groups agree less often, and the formula, fed
# each question's measured pass rate, follows the measured shares. Where it misses (G = 16: 0.471 against
# 0.438) it is the plug-in estimate, not the model: the pass rate p̂ fed to the formula was counted on the very
# same 16 samples. A question with p̂ = 1/16 gets a formula value of (15/16)^16, about a third, while its one
# group of 16, holding that one right reply, never agrees. During training the share
# of agreeing groups at G = 4 was about one half on average (from 0.17 to 0.83 from step to step): half of the
# generation taught nothing. A larger group buys signal per question at the price of fewer questions per step, for the same number of samples;
# DAPO (Yu et al. 2025) instead over-samples and drops the groups that agree ("dynamic sampling"). Exercise
# part 6 makes the choice from these measurements.
#
# ## 6 · Reward hacking, caught in the act
#
# A verifier that is slightly wrong is a target. Two flawed checkers, each a plausible shortcut:
#
# - `contains_reward`: right if **any** number in the reply is the answer (a reply that hedges with several
#   numbers can win);
# - `lenient_reward`: right if any arithmetic **expression** in the reply evaluates to the answer — the leniency
#   of a checker that accepts an unsimplified answer — so `7 * 8` counts as 56.
#
# On the untuned model's samples (section 5), how often does each accept a reply the checked reward refuses?

# %%
for flawed in ("contains", "lenient"):
    f = np.array(groups["rewards"][flawed])
    print(f"{flawed:9s} accepts {f.mean():.2f} of the samples; accepted but wrong by the checked reward: "
          f"{((f == 1) & (checked == 0)).mean():.2f}")
sample = next(s for row, fr, ch in zip(groups["samples"], groups["rewards"]["lenient"], groups["rewards"]["checked"])
              for s, a, b in zip(row, fr, ch) if a == 1 and b == 0)
print(f"for example: {sample!r}")

# %% [markdown]
# The first flaw is nearly harmless on this model: it seldom writes a second number, so "any number is right"
# almost always agrees with "the last number is right". The second is wide open: the untuned model restates
# the question ("To calculate 7 * 8, …") in a large share of its samples, and the lenient checker accepts
# every such restatement as the answer — even one followed by a wrong product, as in the example printed. A
# flaw is only dangerous where the policy already goes, or can get to.
#
# `course grpo` trained one run on `lenient_reward`, with everything else as in section 4, and logged the
# checked reward of the same samples beside it (a reward function with weight 0 moves nothing):

# %%
hack = results["hack"]
fig, ax = plt.subplots(figsize=(7, 3.8))
hc = hack["curve"]
ax.plot(hc["step"], hc["rewards/lenient_reward/mean"], "r-o", label="the reward it was trained on (lenient)")
ax.plot(hc["step"], hc["rewards/checked_reward/mean"], "k-s", label="checked reward, same samples")
ax.plot(steps, np.mean([r["curve"]["rewards/checked_reward/mean"] for r in runs], 0), "b--",
        label="checked reward of the GRPO runs (section 4)")
ax.set(title="Trained on a flawed reward", xlabel="optimizer step", ylabel="mean reward of the step's samples")
ax.legend()
plt.tight_layout()
plt.show()
base = results["base_rates"][cfg["task"]]
untuned_lenient = grpo.accuracy(base["replies"], verifiable_rows(cfg["task"], "test", base["n"]), "lenient")
print(f"held-out greedy accuracy after the flawed run: {hack['after']['accuracy']:.3f} by the checked reward, "
      f"{hack['after']['lenient']:.3f} by the lenient one (before: {before:.3f} checked, {untuned_lenient:.3f} lenient)")
print("its replies at the last step:")
for reply, lr, cr in zip(hack["samples"][-1]["completions"], hack["samples"][-1]["rewards"]["lenient_reward"],
                         hack["samples"][-1]["rewards"]["checked_reward"]):
    print(f"  lenient {lr:.0f}, checked {cr:.0f}: {reply!r}")

# %% [markdown]
# Caught in the act — in one run, one seed: a pointer, not a rate. The reward the run optimised climbed to 1.0 — by its own measure the run succeeded — while
# the checked reward of the very same samples fell to 0, and the held-out accuracy, 0.267 before, ended at
# 0.000. The lenient checker had nothing left to give on greedy replies: it already accepted all of the untuned
# model's (1.000, printed), so the run moved the *sampled* replies to where the greedy ones were and lost the
# few right products on the way. The replies say why: the model learned to restate the product and stop short of it ("To calculate
# 3 * 13, you simply multiply"), which the lenient checker scores as right. Nothing in the run's own reward
# curve shows a problem; only a second, independent check does. Two habits follow (Amodei et al. 2016 list
# reward hacking among the concrete problems of AI safety): log a reward you do not train on, and read samples
# at every stage. The fix is the checked reward of section 4, which cannot be satisfied without the product.
#
# ## 7 · GRPO against rejection sampling at the same compute
#
# The simplest alternative needs no RL at all: sample replies, keep the correct ones, fine-tune on them —
# rejection-sampling fine-tuning, or one round of expert iteration (STaR, Zelikman et al. 2022). `course grpo`
# gave it GRPO's budget: as many samples (from the untuned model, at the same temperature and length), then
# TRL's `SFTTrainer` with the same LoRA adapter for as many steps of as many sequences, at its own learning
# rate from a short sweep.

# %%
rs = results["rs_sft"]
rs_after = [r["after"]["accuracy"] for r in rs["runs"]]
print(f"rejection sampling: kept {', '.join(str(r['kept']) for r in rs['runs'])} of {rs['runs'][0]['drawn']} samples "
      f"(per seed); LR sweep {rs['sweep']} -> {rs['learning_rate']:g}")
print(f"{'':26s} {'held-out accuracy':>18s} {'95 % interval':>18s} {'wall s per run':>15s}")
for label, acc, secs in (("GRPO", after, [r["train_seconds"] for r in runs]),
                         ("rejection sampling + SFT", rs_after,
                          [r["sample_seconds"] + r["train_seconds"] for r in rs["runs"]])):
    m, h = interval95(acc)
    print(f"{label:26s} {m:18.3f} [{m - h:.3f}, {m + h:.3f}] {np.mean(secs):15.0f}")
m, h = interval95([a - b for a, b in zip(after, rs_after)])
print(f"GRPO − rejection sampling, paired by seed: {m:+.3f}, 95 % interval [{m - h:+.3f}, {m + h:+.3f}]")

# %% [markdown]
# On this task the two tie: GRPO's held-out accuracy is higher in every seed, but the paired difference's 95 %
# interval, over 3 seeds, includes zero. Both learned the same thing — lead with the equation, so that the
# product fits in the budget — and rejection sampling got there from far fewer examples (13 to 19 correct
# samples of 128), because what had to be learned was a form the model already produces when it is right.
# GRPO also learns from the *wrong* samples (negative advantages) and samples from the improving policy, so its
# later groups contain more right answers; rejection sampling here drew everything from the untuned model once.
# The compute was matched, the tuning was not: GRPO's sweep tried two learning rates for 8 steps and tied
# (section 4); rejection sampling's tried three for the full 16 steps and picked the largest, at the edge of
# its range, so a larger one might have done better still; each sweep scored 25 validation questions, a
# standard error near 0.1. The comparison is as measured, not settled. The compute was matched by construction
# — the same 128 samples of at most 12 tokens and the same 16 steps of 8 sequences — not by the clock: the wall
# times printed also differ in how the samples were drawn (GRPO generates 8 at every step, between training
# steps; rejection sampling draws all of them at once, in batches) and in the machine's load, which the file
# does not separate.
#
# ## Summary
#
# - A verifiable reward is a program. Choose the task by measuring the untuned model's base rate: here two
#   candidates gave no usable signal (0.050, and a parameter count the model never writes as a number) and the
#   times table, at 0.267, had room to climb.
# - GRPO samples a group of replies per question and uses each reply's reward relative to its group as the
#   advantage: no value model, and with TRL's default β = 0, no reference model. The hand-written advantage and
#   loss (the clipped surrogate, the k3 KL term, the `grpo`, `dapo` and `dr_grpo` normalisations) equal TRL's to
#   float32 rounding.
# - `grpo` divides by each reply's length (short replies' tokens weigh more); `dapo` and `dr_grpo` weigh every
#   token the same.
# - 16 steps of 8 samples lifted held-out accuracy from 0.267 to 0.672 (3 seeds, interval excluding zero),
#   mostly by teaching the model to answer before its token budget ran out; facts it lacked stayed wrong. About
#   half of each step's time was generation.
# - A group that agrees teaches nothing: two thirds of the groups of 4 on the untuned model; larger groups
#   agree less, at the price of fewer questions per step.
# - A flawed checker is an optimisation target: trained on the lenient one, the model's own reward reached 1.0
#   while its held-out accuracy fell to 0.000. Log an independent check and read samples.
# - Rejection-sampling SFT at the same compute tied with GRPO here (3 seeds).
#
# **Exercises:** [exercises/09_rl_verifiable_rewards.ipynb](../exercises/09_rl_verifiable_rewards.ipynb) — a
# reward function and its edge cases, group-relative advantages by hand, the zero-advantage fraction, reading a
# GRPO log, and choosing a group size under a compute budget.
