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
# # 07 · Preference tuning with DPO, and evaluating a model beyond its loss
#
# **Goal.** Take lesson 06's instruction-tuned SmolLM2-135M-Instruct and teach it a *preference*: of two
# answers to the same question, the right one. Write the DPO loss by hand and check it against TRL's
# `DPOTrainer` number for number; learn what its logged `rewards/*` mean; train with a LoRA adapter
# whose reference model is the same network with the adapter switched off; measure before and after
# on held-out pairs, for several β and seeds; evaluate the answers beyond the loss; and place DPO
# beside RLHF, ORPO, KTO and GRPO.
#
# **Runtime.** About a minute and a half on a 2-core CPU. The full runs (3 values of β × 3 seeds, each
# evaluated on held-out pairs and answers) are `course dpo`; it wrote `data/results/dpo.json`, which this
# notebook reads and plots. Live, it trains two steps and checks the loss against TRL.
#
# **Model.** `smollm2-135m-instruct` with lesson 06's adapter (`data/adapters/sft-docstring`) merged in.
#
# **You will use** `course_lib.tuning.dpo` (the pairs, the loss, the runs), TRL's `DPOTrainer` (and, read from a
# results file, `ORPOTrainer`), peft's LoRA.

# %%
from course_lib.notebook import below, quiet_notebook

quiet_notebook()  # first: peft, imported below, loads bitsandbytes, whose CPU notice this keeps out of the page

import tempfile
from collections import Counter

import matplotlib.pyplot as plt
import psutil
import torch
from datasets import Dataset
from transformers import PrinterCallback

from course_lib.tuning import dpo, sft
from course_lib.doctor import versions_line
from course_lib.models import count_parameters, load_base_model, load_tokenizer, set_seed, set_threads
from course_lib.results import load_results, require_adapter, require_results

set_threads()  # one CPU thread (COURSE_THREADS): the same numbers on every machine
print(versions_line())
# what this lesson reads, checked before anything slow: a missing or broken file stops here in one sentence
require_adapter("sft-docstring")
require_results("dpo", "orpo")

# %% [markdown]
# ## 1 · Preferences that can be checked
#
# Supervised fine-tuning shows the model *one* good answer. Preference tuning shows it two answers to
# the same prompt, one preferred (`chosen`, y_w) and one not (`rejected`, y_l), and asks it to move
# probability from the second to the first. Real preference data comes from people ranking answers, or
# from AI feedback: a strong model rating several models' answers, as in UltraFeedback (Cui et al. 2023);
# ours is built from the course's own text so that every preference is *true and checkable*:
# `course build-data` writes `data/preferences/` from lesson 06's questions ("Explain what the Python
# function `X` does."). `chosen` is the first sentence of X's real docstring; `rejected` is either
# the first sentence of **another function's** docstring (about as many words, so length cannot
# decide), or X's own sentence in a **broken format** (a chatty preamble on its own line, no final full
# stop — what lesson 06's base model used to write). For the format pairs length *does* decide: the
# rejected answer is the same sentence, lower-cased and without its full stop, after a preamble, so it has more tokens, and a sum of per-token
# log-probabilities (each one negative) is lower for it almost whatever the model — keep that in mind
# when their accuracy is printed below.

# %%
name = sft.lesson_model()
tokenizer = load_tokenizer(name)
pairs = {s: dpo.preference_rows(s) for s in ("train", "validation", "test")}
for split, rows in pairs.items():
    print(f"{split:10s} {len(rows):3d} pairs  {dict(Counter(r['kind'] for r in rows))}")
prompts = {s: {r["prompt"] for r in rows} for s, rows in pairs.items()}
print("a prompt in two splits:", bool(prompts["train"] & prompts["validation"] or prompts["train"] & prompts["test"]
                                      or prompts["validation"] & prompts["test"]))
for example in (pairs["train"][0], next(r for r in pairs["train"] if r["kind"] == "format")):
    print(f"\n[{example['kind']}] {example['prompt']}\n  chosen:   {example['chosen']!r}\n  rejected: {example['rejected']!r}")

# %% [markdown]
# TRL's preference format is a prompt and two completions, here as messages (`dpo.to_trl`). The
# trainer renders each with the chat template; the **completion** is everything after the assistant
# header: the reply, its `<|im_end|>` and a newline. Only those tokens count, exactly as lesson 06
# masked the loss to the reply.

# %% [markdown]
# ## 2 · The DPO loss, by hand
#
# RLHF (Ouyang et al. 2022) first fits a reward model r(x, y) to human comparisons, then trains the
# policy π to maximise r while a KL penalty, weighted by β, keeps it near the SFT model π_ref. Rafailov
# et al. (2023) noticed that this objective has a closed-form optimum, π*(y|x) ∝ π_ref(y|x)·exp(r(x,y)/β),
# so any reward can be written through a policy: r(x, y) = β·log π(y|x)/π_ref(y|x) plus a term that
# depends on x only. Put that into the Bradley–Terry model of a comparison,
# P(y_w ≻ y_l) = σ(r(x, y_w) − r(x, y_l)), and the x-only term cancels. What is left is a
# classification loss on the policy itself — no reward model, no sampling (Rafailov et al. 2023, eq. 7):
#
# $$\mathcal{L}_\text{DPO} = -\log\sigma\Big(\beta\big[(\log\pi(y_w|x)-\log\pi_\text{ref}(y_w|x)) - (\log\pi(y_l|x)-\log\pi_\text{ref}(y_l|x))\big]\Big)$$
#
# Each log π(y|x) is a **sequence** log-probability: the sum, over the completion's tokens only, of
# the log-probability the model gives each token after everything before it. `dpo.sequence_logps`
# computes it; `dpo.dpo_loss` is the formula above, line for line:

# %%
import inspect

print(inspect.getsource(dpo.dpo_loss))

# %% [markdown]
# **β·log π/π_ref is the implicit reward.** It is what TRL logs: `rewards/chosen` and
# `rewards/rejected` are its batch means on y_w and y_l, `rewards/margins` the mean of their
# difference, and `rewards/accuracies` the share of pairs whose chosen reward is the larger. At step 0
# the policy *is* the reference, so every reward is 0, the loss is log 2 and the "accuracy" is 0 (no
# pair is strictly ahead). The rewards are relative to the reference, not scores of the answers.
#
# ### The reference: the same model with the adapter off
#
# DPO needs π_ref at every step. Our policy is lesson 06's model (its SFT adapter merged into the base
# weights, exactly, in float32) plus a **fresh** LoRA adapter. A fresh adapter has B = 0, so at the
# start policy and reference are the same function; and the reference is the policy with its adapter
# disabled. Given a peft model and `ref_model=None`, TRL's `DPOTrainer` does just that
# (`use_adapter(..., adapter_name=None)` around the reference forward pass): no second model in memory.
# We train live for two steps of four pairs, then check the hand-written loss against TRL's on
# four held-out pairs.

# %%
set_seed(0)
reference = dpo.sft_reference(name)  # lesson 06's model: base + SFT adapter, merged
live = dpo.DPORunConfig(max_steps=2, per_device_train_batch_size=4)
trainer = dpo.dpo_trainer(reference, tokenizer, pairs["train"][:8], [], live, tempfile.mkdtemp(), beta=0.1,
                          seed=0, eval_strategy="no")
trainer.remove_callback(PrinterCallback)  # the log is read from trainer.state below, rounded
print(f"TRL made a second reference model: {trainer.ref_model is not None}; "
      f"adapters in the policy: {list(trainer.model.peft_config)}")
trainer.train()
for entry in trainer.state.log_history[:-1]:
    print({k: round(v, 4) for k, v in entry.items() if k.startswith(("rewards/", "loss", "step"))})

# %%
policy = trainer.model.eval()
check = pairs["validation"][:4]
tokenized = trainer._prepare_dataset(Dataset.from_list([dpo.to_trl(p) for p in check]), tokenizer, trainer.args, "check")
theirs = trainer.data_collator([tokenized[i] for i in range(len(check))])  # TRL's own tokenizing and collating
ours = dpo.pair_batch(tokenizer, check)
print("batch (input_ids, attention_mask, completion_mask) hand-written == TRL:",
      all(torch.equal(ours[k], theirs[k]) for k in ("input_ids", "attention_mask", "completion_mask")))
with torch.no_grad():
    trl_loss = trainer.compute_loss(policy, theirs).item()
    trl_logged = {k: v[-1] for k, v in trainer._metrics["eval"].items()}
    logps = dpo.sequence_logps(policy, ours)
    with policy.disable_adapter():
        ref_logps = dpo.sequence_logps(policy, ours)
n = len(check)
mine = dpo.dpo_loss(logps[:n], logps[n:], ref_logps[:n], ref_logps[n:], beta=0.1)
print(f"{'':20s} {'by hand':>10s} {'TRL':>10s}")
print(f"{'loss':20s} {mine.loss.item():10.4f} {trl_loss:10.4f}")  # 4 decimals: the last float32 digits move with the CPU
for key, value in dpo.logged_rewards(mine).items():
    print(f"{key:20s} {value:10.4f} {trl_logged[key]:10.4f}")
diff = max([abs(mine.loss.item() - trl_loss)] + [abs(v - trl_logged[k]) for k, v in dpo.logged_rewards(mine).items()])
print(f"max |by hand − TRL| {below(diff, 1e-5)}")

# %% [markdown]
# The hand-written loss and rewards equal TRL's to float32 rounding (tests/test_dpo.py checks the same
# on a tiny model, with a non-zero adapter, at two values of β). After two steps the policy has barely
# moved: rewards of a few hundredths (a rejected reward of −0.07 and a margin of 0.06 above, in β·nats).
#
# **What the disabled-adapter reference saves.** A separate reference model would be a second copy of
# every base weight, frozen, in memory for the whole run. We measure both: the bytes of the parameters,
# and what loading a second copy and running it once adds to this process's resident memory.

# %%
param_bytes = sum(p.numel() * p.element_size() for p in policy.get_base_model().parameters())
adapter_bytes = sum(p.numel() * p.element_size() for n_, p in policy.named_parameters() if "lora_" in n_)
rss_before = psutil.Process().memory_info().rss
second_copy = load_base_model(name).eval()
with torch.no_grad():
    second_copy(input_ids=ours["input_ids"][:1])  # one forward pass: the weights, memory-mapped from disk, are read
rss_after = psutil.Process().memory_info().rss
print(f"reference as a second model: {param_bytes / 1e6:.0f} MB of float32 parameters "
      f"({count_parameters(second_copy):,} parameters)")
print(f"reference as the adapter switched off: 0 extra bytes (the LoRA adapter itself: {adapter_bytes / 1e6:.1f} MB)")
del second_copy

# %% tags=["nbval-ignore-output"]
# resident memory depends on the machine's load and page cache: between 0.8× and 1.0× on a shared CPU
print(f"loading and running one grew this process's resident memory by {(rss_after - rss_before) / param_bytes:.1f}× "
      "the parameters' bytes")

# %% [markdown]
# The price is compute, not memory: the reference forward pass still runs at every step (inside
# `disable_adapter()`), on the same weights. With TRL's `precompute_ref_log_probs=True` it would run
# once per pair before training instead. On a 7B model in 16-bit, two bytes per parameter, the second copy
# would be 2 × 7 = 14 GB, which is what the adapter trick saves on a single GPU.

# %% [markdown]
# ## 3 · The long run: β × seeds
#
# `course dpo` trained one epoch over the training pairs for each β and seed, evaluating on validation
# pairs during training, and measured the held-out test pairs before (the SFT model) and after. Its
# settings:

# %%
results = load_results("dpo")
cfg = results["config"]
print(f"dpo.json: made by `{results['command']}` on {results['model']}, {results['wall_seconds'] / 60:.0f} min")
print(f"β {cfg['betas']} × seeds {cfg['seeds']}; {results['train_pairs']} training pairs, {cfg['max_steps']} steps "
      f"of {cfg['per_device_train_batch_size']}, LoRA r={cfg['r']} on all linear layers "
      f"({results['trainable_parameters']:,} trainable parameters), learning rate {cfg['learning_rate']:g}; "
      f"{results['eval_pairs']} validation pairs every {cfg['eval_steps']} steps, {results['test_pairs']} test pairs")
print(f"reference as a second copy would have cost {results['reference_copy_bytes'] / 1e6:.0f} MB")

# %% [markdown]
# **Over training.** The curves below are the validation pairs' logged quantities, averaged over the
# three seeds, for each β. The chosen reward is not guaranteed to go up: DPO only asks the *margin* to
# grow, and it often gets there mostly by pushing the rejected answer down.

# %%
import numpy as np

runs = results["runs"]
betas = cfg["betas"]
panels = (("rewards/margins",), ("rewards/chosen", "rewards/rejected"), ("rewards/accuracies",))
fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
for beta, color in zip(betas, ("tab:blue", "tab:orange", "tab:green")):
    beta_runs = [r for r in runs if r["beta"] == beta]
    steps = [0] + beta_runs[0]["curve"]["eval"]["step"]
    for ax, keys in zip(axes, panels):
        for key, style in zip(keys, ("o-", "s--")):
            values = np.array([[0.0] + r["curve"]["eval"][key] for r in beta_runs])  # step 0: policy = reference
            ax.plot(steps, values.mean(0), style, color=color, label=f"β = {beta}" if style == "o-" else None)
            ax.fill_between(steps, values.min(0), values.max(0), color=color, alpha=0.15)
for ax, keys in zip(axes, panels):
    ax.set(title=" (solid), ".join(keys) + (" (dashed)" if len(keys) > 1 else ""), xlabel="optimizer step",
           ylabel="share of pairs" if "accuracies" in keys[0] else "implicit reward (β·nats)")
axes[0].legend()
fig.suptitle(f"DPO on {results['eval_pairs']} validation pairs: mean and min–max of {len(cfg['seeds'])} seeds per β")
plt.tight_layout()
plt.show()

# %% [markdown]
# A larger β multiplies every reward by β, so the margins in β·nats are not comparable across β. The
# table below therefore gives both the reward margin and the **log-ratio margin** (margin / β, in nats),
# with the held-out preference accuracy (share of test pairs where the model gives the chosen answer
# the higher log-probability), and the **drift**: the mean per-token KL divergence from the reference on
# the test pairs' chosen answers.

# %%
before = results["before"]
print(f"{'':10s} {'accuracy':>12s} {'reward margin':>16s} {'log-ratio margin':>18s} {'KL to ref (nats/token)':>24s}")
print(f"{'before':10s} {before['accuracy']:12.3f} {before['reward_margins']:16.3f} {0.0:18.2f} {before['kl']:24.4f}")
beta_table = {}
for beta in betas:
    after = [r["after"] for r in runs if r["beta"] == beta]
    stats = {k: (np.mean([a[k] for a in after]), np.std([a[k] for a in after], ddof=1))
             for k in ("accuracy", "reward_margins", "kl")}
    stats["logratio_margin"] = (np.mean([a["reward_margins"] / beta for a in after]),
                                np.std([a["reward_margins"] / beta for a in after], ddof=1))
    beta_table[beta] = stats
    print(f"{'β = ' + str(beta):10s} " + " ".join(f"{m:.{d}f}±{s:.{d}f}".rjust(w) for (m, s), w, d in zip(
        (stats["accuracy"], stats["reward_margins"], stats["logratio_margin"], stats["kl"]), (12, 16, 18, 24), (3, 3, 2, 4))))
ranked = round(before["accuracy"] * results["test_pairs"])
print(f"\nbefore DPO the chosen answer had the higher log-probability on {ranked} of {results['test_pairs']} test pairs")
print("accuracy by kind, before:", {k: round(v, 3) for k, v in before["accuracy_by_kind"].items()})
for beta in betas:
    by_kind = [r["after"]["accuracy_by_kind"] for r in runs if r["beta"] == beta]
    print(f"  after, β = {beta}:", {k: round(float(np.mean([b[k] for b in by_kind])), 3) for k in by_kind[0]})

# %% [markdown]
# What the measurements say, against what one might expect:
#
# - **Held-out preference accuracy did not move.** Lesson 06's model already ranked the real sentence
#   above the wrong one on 22 of the 24 test pairs (0.917; every format pair, and 0.895 of the
#   other-function pairs), and after DPO it still does — for every β and seed. The 1.0 on the format
#   pairs is close to guaranteed (section 1: the rejected answer has more tokens, so its summed
#   log-probability is lower almost whatever the model); only the other-function pairs test a preference the model could get wrong. What grew is the *size*
#   of the preference: the implicit reward margin is positive on every test pair (`reward_accuracies`
#   1.0 in the file), including the two the model still ranks the wrong way; they moved in the right
#   direction, not far enough to flip.
# - **The chosen answers became less likely**, not more: the chosen reward on the test pairs fell below zero
#   in every run (`reward_chosen` in the file; on the validation pairs, the solid curves above), and the margin grew because the rejected answers fell much
#   faster. DPO's loss only sees the difference, and this is a known behaviour of it, not a bug.
# - **β trades margin for drift, but only once the loss saturates.** The log-ratio margin and the KL to
#   the reference are about the same at β = 0.05 and 0.1, and smaller at β = 0.5. The gradient of the
#   DPO loss is β·σ(−β·Δ)·∇Δ; Adam divides out its scale, so early on every β takes the same steps.
#   The difference appears when β·Δ becomes large and σ(−β·Δ) small: at β = 0.5 a log-ratio margin of
#   a few nats already makes the loss nearly flat, so the policy stops moving away from the reference.
#   A larger β keeps the model closer to the reference — the role Rafailov et al. (2023) give it, as the
#   weight of the KL constraint.

# %% [markdown]
# ## 4 · Evaluation beyond the loss
#
# The DPO loss and its rewards are measured against the reference, on pairs someone wrote: they say
# the policy moved in the preferred direction, not that its answers got better. So we also score what
# the model *generates* for the held-out questions, against the real first sentence of each docstring:
#
# - **response perplexity**: exp of the mean NLL of the reference answer's tokens (lesson 06);
# - **ROUGE-L**: longest-common-subsequence F-measure with the reference (Lin 2004), and **exact match**,
#   defined here because there is one reference sentence per question;
# - **format rate**: lesson 06's docstring-format check;
# - a **pairwise win rate** after-vs-before, judged by a rule this notebook can check: an answer in the
#   docstring format beats one that is not; between two of the same status, the higher ROUGE-L wins;
#   equal is a tie, counted half (`dpo.win_rate`).

# %%
print(f"{str(results['test_pairs']) + ' test questions':22s} {'resp. ppl':>10s} {'ROUGE-L':>8s} {'exact':>6s} "
      f"{'format':>7s} {'win rate vs SFT ± s.e.':>23s} {'W/T/L':>8s} {'changed':>8s}")
print(f"{'SFT (before)':22s} {before['response_ppl']:10.2f} {before['rouge_l']:8.3f} {before['exact']:6.0%} {before['format_rate']:7.0%}")
first_seed = {r["beta"]: r for r in runs if r["seed"] == cfg["seeds"][0]}
for beta, r in first_seed.items():
    a = r["after"]
    w = dpo.win_rate(a["answers"], before["answers"], results["references"])  # = the file's, plus s.e. and changed
    print(f"{'DPO β = ' + str(beta):22s} {a['response_ppl']:10.2f} {a['rouge_l']:8.3f} {a['exact']:6.0%} {a['format_rate']:7.0%} "
          f"{w['win_rate']:15.0%} ± {w['se']:4.0%} {w['wins']:>3d}/{w['ties']}/{w['losses']} {w['changed']:5d}/{len(a['answers'])}")
print("(W/T/L: wins / ties / losses; s.e.: standard error over the questions; one seed per β — generation is the slow part)\n")
show = max(first_seed)
for ref, b, a in list(zip(results["references"], before["answers"], first_seed[show]["after"]["answers"]))[:4]:
    print(f"reference: {ref}\n  SFT:     {b!r}\n  DPO β={show}: {a!r}")

# %% [markdown]
# The answers tell a plainer story than the rewards. DPO on these pairs changed about two thirds of the
# greedy answers (the `changed` column: 15 or 16 of 24), and the rule calls the changes about even:
# wins and losses balance, ties are many (a changed answer can tie), and a win rate near 50 % with a
# standard error of about 7 or 8 points (24 questions) is no measurable improvement — nor a loss. The response perplexity of the real sentences went *up* a little, as the falling
# chosen rewards predicted, and exact matches stay at zero: pairs that teach "the real docstring beats
# another function's" push the wrong answers down without teaching the model the facts it lacks. A
# preference signal cannot add knowledge that no training answer contains, and a loss going down
# (from log 2 towards 0) says nothing about that. This is why the answers are scored, and printed.
#
# ### LLM-as-a-judge and human evaluation
#
# For open-ended answers there is no reference sentence, and the usual evaluator is another, stronger
# LLM asked which of two answers is better (or to grade one). Zheng et al. (2023, "Judging LLM-as-a-Judge
# with MT-Bench and Chatbot Arena") found that GPT-4's verdicts agreed with human experts' about as
# often as the experts agreed with each other (over 80 %), and documented three biases a judge brings:
# **position** (favouring the first, or second, answer shown — mitigated by asking twice with the
# order swapped and counting inconsistent verdicts as ties), **verbosity** (favouring the longer answer
# even when it adds nothing), and **self-enhancement** (favouring answers written by a model like
# itself). Human evaluation is the reference those judges are measured against, and it is slow, costly
# and itself noisy: it needs written guidelines, several raters per item and their agreement reported.
#
# What each measures: a judge or a rater scores *whether people would prefer the answer*, which
# overlap metrics cannot see; ROUGE-L and exact match score *agreement with one reference*, which a judge
# may not check (a fluent, wrong docstring can win a judge's vote). When a course-scale check is
# enough: when the task has a reference or a rule a program can apply — the one-line format, the real
# docstring — as here. No hosted judge is reachable from this machine, and a 135M model judging itself
# would bring the self-enhancement bias in its strongest form. For open-ended chat, a judge with swapped
# positions plus a small human-rated sample to measure the judge's agreement is the usual minimum.

# %% [markdown]
# ## 5 · RLHF, DPO, ORPO, KTO, GRPO on one page
#
# | method | what it optimises | needs a reward model | needs a reference model | data |
# |---|---|---|---|---|
# | **RLHF** (Ouyang et al. 2022, InstructGPT) | PPO on a learned reward r(x, y), minus β·KL to the SFT model | yes, trained on human comparisons | yes (the KL term) and a value model (PPO's critic) | comparisons for the reward model; prompts to sample answers for |
# | **DPO** (Rafailov et al. 2023) | −log σ(β·[log-ratio(y_w) − log-ratio(y_l)]): the RLHF objective's optimum, fitted directly | no (the policy's log-ratio is the implicit reward) | yes, frozen (here: the adapter off) | pairs (prompt, chosen, rejected); no sampling |
# | **ORPO** (Hong et al. 2024, Odds Ratio Preference Optimization) | SFT loss on y_w plus λ·(−log σ(log odds(y_w) − log odds(y_l))), odds = p/(1−p) with p the **length-normalised** probability exp(mean token log-prob) | no | **no** | pairs; SFT and preference in one stage |
# | **KTO** (Ethayarajh et al. 2024, Kahneman–Tversky Optimization) | a prospect-theory value of each answer's log-ratio against a reference point, desirable up, undesirable down | no | yes | **unpaired** answers labelled desirable or undesirable |
# | **GRPO** (Shao et al. 2024, DeepSeekMath, Group Relative Policy Optimization) | PPO-style clipped policy gradient; each answer's advantage is its reward normalised by the mean and std of a *group* of answers sampled for the same prompt | a reward function (a model or a rule: a checker, unit tests) | in the paper yes (a KL term); TRL's `GRPOConfig` defaults to `beta=0.0` and then loads none; **no value model** | prompts; several samples per prompt, generated during training |
#
# DPO and ORPO learn from fixed pairs (offline); RLHF's PPO and GRPO sample from the policy as it trains
# (online), which costs generation at every step — the expensive part on this CPU (section 4's answers
# were generated for one seed per β only, for that reason). KTO suits feedback that arrives as thumbs up
# or down rather than as comparisons. A checkable task like ours is exactly what GRPO's rule-based rewards
# are for; its per-step sampling is what keeps it off a 2-core CPU here. 
#
# **ORPO beside DPO, on the same pairs.** ORPO needs no reference model, so it costs this CPU less per step
# than DPO: `course orpo` trained the same LoRA adapter on the same training pairs for the same steps
# with TRL's `ORPOTrainer` (in trl 1.16 under `trl.experimental.orpo`), λ = 0.1, one seed, in two arms.
# As shipped, trl 1.16's trainer takes its SFT term "over the full prompt and response" (its own comment
# in `concatenated_forward`: the labels are the input ids with only padding masked), and its
# `add_eos_token_if_needed` appends a second `<|im_end|>` after the template's `<|im_end|>` and newline:
# it trains on the whole text — the condition lesson 06 compared in its section 2 — with a tokenization
# DPO does not use. The **reply only** arm (`dpo.orpo_trainer(..., sft_term="completion-only")`) drops
# that extra token, so that its batches are DPO's token for token, and takes the SFT term over the
# completion tokens only (tests/test_dpo.py checks both arms against `dpo.pair_batch`); the **whole
# text** arm is TRL's default. The odds-ratio term is TRL's in both. Both are measured like DPO: against
# lesson 06's model (the adapter off), which ORPO itself never looked at.

# %%
orpo = load_results("orpo")
arms = {"DPO β = 0.1": first_seed[0.1], "ORPO, reply only": orpo["runs"][0],
        "ORPO, whole text": orpo["whole_text_runs"][0]}
print(f"ORPO λ = {orpo['lambda']}, seed {orpo['config']['seeds'][0]}; made by `{orpo['command']}` "
      f"in {orpo['wall_seconds'] / 60:.0f} min")
print(f"{'':18s} {'accuracy':>9s} {'reward acc.':>11s} {'KL to SFT':>10s} {'resp. ppl':>10s} {'ROUGE-L':>8s} "
      f"{'format':>7s} {'win rate vs SFT ± s.e.':>23s}")
for label, r in arms.items():
    a = r["after"]
    w = dpo.win_rate(a["answers"], before["answers"], results["references"])
    print(f"{label:18s} {a['accuracy']:9.3f} {a['reward_accuracies']:11.3f} {a['kl']:10.4f} {a['response_ppl']:10.2f} "
          f"{a['rouge_l']:8.3f} {a['format_rate']:7.0%} {w['win_rate']:15.0%} ± {w['se']:4.0%}")
print("(reward acc.: share of test pairs whose DPO implicit reward, measured against lesson 06's model, favours the chosen answer)")
for label in ("ORPO, reply only", "ORPO, whole text"):
    r = arms[label]
    print(f"{label}: training loss (SFT term + λ·odds-ratio term) {r['train_loss'][0]:.3f} -> {r['train_loss'][-1]:.3f}; "
          f"its SFT term {r['train_nll'][0]:.3f} -> {r['train_nll'][-1]:.3f}")

# %% [markdown]
# Measured. In both arms the loss is nearly all SFT term (compare the two printed rows: at λ = 0.1 the
# odds-ratio term adds little), so what that term is taken over decides the outcome.
#
# - **Whole text (TRL's default).** Much of what its SFT term learns is the system prompt, the template and
#   the question — not the reply, and on the first batch harder for this model than the reply (compare the
#   two arms' first SFT-term values above) — and the model
#   drifts twice as far from lesson 06's model as the reply-only arm (KL 0.0758 against 0.0373).
#   Measured against lesson 06's model, the rejected answers gained more than the chosen ones on most
#   test pairs (reward accuracy 0.125), and held-out preference accuracy fell from 0.917 to 0.833 — two
#   pairs of 24, one seed.
# - **Reply only.** Preference accuracy stays at 0.917, the drift is the smallest of the three runs,
#   and the chosen answers became *more* likely (response perplexity 18.54 against lesson 06's 19.06;
#   DPO's rose to 20.01; one seed, no spread measured). But the preference itself barely moved: the DPO reward favours the chosen
#   answer on only 0.542 of the test pairs, where DPO's does on all of them.
#
# Each printed training value is one batch of four pairs, so first against last compares different pairs:
# read the whole series in data/results/orpo.json before calling it a trend.
#
# So the verdict an earlier version of this lesson drew — ORPO "mostly repeated supervised fine-tuning
# and lowered preference accuracy" — came from TRL's default arm: the SFT term over the whole text together
# with its extra `<|im_end|>` (this run does not separate the two), one seed, one learning rate shared by
# both arms although the whole-text term averages over more tokens — not from ORPO's odds-ratio term. With the SFT term on the
# replies, ORPO at λ = 0.1 is mostly more SFT on the chosen answers with a weak preference push; ORPO was
# designed to do SFT and preference alignment in one stage, from a base model (Hong et al. 2024), and
# starting from a model already fine-tuned on this task, a larger λ would be the first thing to try. By
# section 4's rule both ORPO arms' greedy answers win 58 % against lesson 06's, with a standard error of
# 8 points: within about one standard error of even, like DPO's. One seed and one λ: a pointer, not a
# verdict.

# %% [markdown]
# ## Summary
#
# - Preference data: (prompt, chosen, rejected) — here built so that every preference is checkable: the
#   real docstring sentence against another function's, or against a broken format.
# - DPO (Rafailov et al. 2023) turns RLHF's KL-regularised objective into a classification loss on log
#   π/π_ref of the chosen and the rejected answer; the sequence log-probabilities sum over completion
#   tokens only. The hand-written loss and TRL's `rewards/chosen`, `rewards/rejected`,
#   `rewards/margins`, `rewards/accuracies` agree to float32 rounding.
# - The rewards are β·log π/π_ref: relative to the reference, zero at step 0, and their margins scale
#   with β; compare β by the log-ratio margin and the KL to the reference.
# - A LoRA adapter makes the reference free: the same weights with the adapter off, instead of a second
#   frozen copy (measured in section 2).
# - ORPO needs no reference model. trl 1.16's `ORPOTrainer` takes its SFT term over the whole text (and
#   adds a second `<|im_end|>`); that arm flipped 2 of 24 held-out pairs the wrong way (0.917 → 0.833,
#   one seed). With the SFT term on the
#   replies only, as DPO and lesson 06 train, ORPO kept the accuracy, drifted least and made the chosen
#   answers more likely, but at λ = 0.1 barely moved the preference (one seed, section 5).
# - Evaluate the answers, not only the loss: response perplexity, ROUGE-L and exact match against a
#   reference, a checkable pairwise rule; an LLM judge or human raters when no rule exists, with their
#   biases (position, verbosity, self-enhancement) in mind.
#
# **Exercises:** [exercises/07_preference_tuning.ipynb](../exercises/07_preference_tuning.ipynb) — sequence
# log-probabilities over the completion, the DPO loss, the implicit reward, reading a training log, and
# choosing β from a measurement.
