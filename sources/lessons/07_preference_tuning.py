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
# # 07 · Preference tuning with DPO: pairs from the model's own answers, and a win rate you can trust
#
# **Goal.** Take lesson 06's instruction-tuned SmolLM2-135M-Instruct and make its answers *better by a
# stated preference*, measurably. Build preference pairs from the model's own sampled answers, scored by a
# rule a program checks; write the DPO loss by hand and check it against TRL's `DPOTrainer` number for
# number; train with a LoRA adapter whose reference model is the same network with the adapter switched
# off; choose the learning rate by a sweep; measure before and after over three seeds, with a win rate and
# its uncertainty; watch the chosen answers' likelihood fall, and try the usual remedy; set IPO and ORPO
# beside DPO; and ask the model itself to judge, in both orders.
#
# **Runtime.** About a minute and a half on a 2-core CPU. The long runs are `course` commands that wrote
# the results files this notebook reads (`course dpo-pairs`, `dpo-sweep`, `dpo`, `dpo-variants`, `judge`);
# live, it samples a few answers, trains two DPO steps and checks the loss against TRL.
#
# **Model.** `smollm2-135m-instruct` with lesson 06's adapter (`data/adapters/sft-docstring`) merged in.
#
# **You will use** `course_lib.tuning.pairs` (the rule, on-policy pairs, win rates), `course_lib.tuning.dpo`
# (the loss, held-out metrics), `course_lib.tuning.judge`, TRL's `DPOTrainer` (and, read from a results
# file, its `ORPOTrainer`), peft's LoRA.

# %%
from course_lib.notebook import quiet_notebook

quiet_notebook()  # first: peft, imported below, loads bitsandbytes, whose CPU notice this keeps out of the page

import inspect
import tempfile

import matplotlib.pyplot as plt
import numpy as np
import psutil
import torch
from datasets import Dataset
from transformers import PrinterCallback

from course_lib.data.preferences import preference_rows, to_trl
from course_lib.doctor import versions_line
from course_lib.models import count_parameters, load_base_model, load_tokenizer, set_seed, set_threads
from course_lib.results import load_results, require_adapter, require_results
from course_lib.tuning import dpo, judge, pairs, sft

set_threads()  # one CPU thread (COURSE_THREADS): the same numbers on every machine
print(versions_line())
# what this lesson reads, checked before anything slow: a missing or broken file stops here in one sentence
require_adapter("sft-docstring")
require_results("dpo_pairs", "dpo_sweep", "dpo", "dpo_variants", "judge")

# %% [markdown]
# ## 1 · Pairs the model can get wrong
#
# Supervised fine-tuning shows the model *one* good answer. Preference tuning shows it two answers to the
# same prompt, one preferred (`chosen`, y_w) and one not (`rejected`, y_l), and asks it to move probability
# from the second to the first. Real preference data comes from people ranking answers, or from AI
# feedback: a strong model rating several models' answers, as in UltraFeedback (Cui et al. 2023).
#
# Where the two answers come from matters. The course's first pairs (`data/preferences`, made by
# `course build-data`) set the real first sentence of a function's docstring against another function's
# sentence, or against the same sentence in a chatty frame. Lesson 06's model already tells most of them
# apart: below, the share of held-out pairs where it gives the chosen answer the higher log-probability
# (summed over the answer's tokens, what DPO's loss sees; and per token, which a length difference cannot
# decide).

# %%
name = sft.lesson_model()
tokenizer = load_tokenizer(name)
sft_model = dpo.sft_reference(name)  # lesson 06's model: base + SFT adapter, merged
hand_made = preference_rows("test", 12)  # the first 12 held-out pairs: a live measurement has to be short
acc = dpo.pair_accuracy(sft_model, tokenizer, hand_made)
print(f"hand-made pairs, the first {len(hand_made)} held out: lesson 06's model prefers the chosen answer on "
      f"{acc['accuracy']:.0%} of them (summed log-probability), {acc['accuracy_per_token']:.0%} per token")

# %% [markdown]
# A pair the model already gets right can still be trained on, but pushing down a sentence it would never
# write changes little in what it *does* write. Tajwar et al. (2024) found that preference tuning works
# best on **on-policy** pairs: answers sampled from the model being tuned, the better one preferred; Xu et
# al. (2024) showed DPO on answers the model does not produce can settle on behaviour nobody asked for. So
# `course dpo-pairs` samples four answers per prompt from lesson 06's model (temperature 0.7), scores each
# with a rule, and keeps the best as chosen and the worst as rejected; a prompt whose samples all score the
# same gives no pair.
#
# **The rule** (`pairs.docstring_score`) has to be one a program can check on this task, and each part
# says something about a docstring:
#
# - **the docstring format** (lesson 06's `format_ok`: one line, at most 25 words, a final full stop): an
#   answer that fails it scores 0;
# - **the parameters named**: the share of the function's parameters (from its `def` line, without `self`,
#   `cls` and one-letter names) the answer mentions. PEP 257 asks a function's docstring to document its
#   arguments, and an answer that names them says what the function works on;
# - **ROUGE-L** with the first paragraph of the real docstring (Lin 2004; lesson 06's metric): agreement
#   with what the standard library's authors wrote.
#
# Inside the format, the score is the mean of the last two, a number in [0, 1]. A rule rewards what it
# measures and nothing else — section 8 asks a model instead. Here is the recipe live, on one validation
# prompt (`course dpo-pairs` ran it on every prompt of every split):

# %%
rows = pairs.split_rows("validation")[:1]
config = pairs.PairsConfig()
set_seed(1)
samples = pairs.sample_answers(sft_model, tokenizer, [sft.prompt_for(tokenizer, r) for r in rows], k=config.samples,
                               temperature=config.temperature, max_new_tokens=config.max_new_tokens)
for row, texts in zip(rows, samples):
    question, real = row["messages"][0]["content"], row["messages"][-1]["content"]
    print(f"{question!r}\n  parameters {pairs.parameters_of(question)}; real docstring: {real!r}")
    scores = []
    for text in texts:
        part = pairs.score_parts(text, question, real)
        scores.append(part["score"])
        print(f"  score {part['score']:.3f} (format {part['format_ok']!s:5s} names {part['names']:.2f} "
              f"ROUGE-L {part['rouge_l']:.2f})  {text!r}")
    pair = pairs.on_policy_pair(question, texts, scores)
    print("  ->", "all tied: no pair" if pair is None else f"chosen {pair['chosen']!r}\n     rejected {pair['rejected']!r}", "\n")

# %%
made = load_results("dpo_pairs")
print(f"dpo_pairs.json: made by `{made['command']}` in {made['wall_seconds'] / 60:.0f} min; "
      f"{made['config']['samples']} samples per prompt at temperature {made['config']['temperature']}")
print(f"{'split':11s} {'prompts':>8s} {'pairs':>6s} {'all tied':>9s} {'samples in format':>18s} "
      f"{'SFT accuracy':>13s} {'per token':>10s} {'chosen longer':>14s}")
for split, s in made["splits"].items():
    a = s["sft_pair_accuracy"]
    print(f"{split:11s} {s['prompts']:8d} {s['pairs']:6d} {s['all_tied']:9d} {s['sample_format_rate']:18.0%} "
          f"{a['accuracy']:13.3f} {a['accuracy_per_token']:10.3f} {a['chosen_longer']:14.0%}")
example = pairs.on_policy_rows("train")[0]
print(f"\na training pair: {example['prompt']!r}\n  chosen   ({example['chosen_score']:.3f}) {example['chosen']!r}\n"
      f"  rejected ({example['rejected_score']:.3f}) {example['rejected']!r}")

# %% [markdown]
# Lesson 06's model ranks these pairs right only about three times in four — 0.745 of the 47 held-out
# pairs, against HANDMADE of the first hand-made ones above: they hold answers it writes itself, and the
# rule's better one is not always its likelier one. That leaves DPO something to change, and an accuracy
# that can be seen to move. Length is on the chosen answer's side here: it is the longer answer in only 30 %
# of the held-out pairs, and a summed log-probability, which falls with every token, favours the shorter
# answer whatever it says; per token, which a length difference cannot decide, the accuracy is 0.723. A few
# prompts gave no pair (two of 64 in training, one of 48 held out): their four samples scored the same.

# %% [markdown]
# ## 2 · The DPO loss, by hand
#
# RLHF (Ouyang et al. 2022) first fits a reward model r(x, y) to human comparisons, then trains the
# policy π to maximise r while a KL penalty, weighted by β, keeps it near the SFT model π_ref. Rafailov
# et al. (2023) noticed that this objective has a closed-form optimum, π*(y|x) ∝ π_ref(y|x)·exp(r(x,y)/β),
# so any reward can be written through a policy: r(x, y) = β·log π(y|x)/π_ref(y|x) plus a term that
# depends on x only. Put that into the Bradley–Terry model of a comparison,
# P(y_w ≻ y_l) = σ(r(x, y_w) − r(x, y_l)), and the x-only term cancels. What is left is a
# classification loss on the policy itself — no reward model, no sampling during training (Rafailov et
# al. 2023, eq. 7):
#
# $$\mathcal{L}_\text{DPO} = -\log\sigma\Big(\beta\big[(\log\pi(y_w|x)-\log\pi_\text{ref}(y_w|x)) - (\log\pi(y_l|x)-\log\pi_\text{ref}(y_l|x))\big]\Big)$$
#
# Each log π(y|x) is a **sequence** log-probability: the sum, over the completion's tokens only, of
# the log-probability the model gives each token after everything before it. TRL's preference format is a
# prompt and two completions, here as messages; the trainer renders each with the chat template, and the
# **completion** is everything after the assistant header: the reply, its `<|im_end|>` and a newline —
# exactly what lesson 06 masked the loss to. `dpo.sequence_logps` computes it; `dpo.dpo_loss` is the
# formula above, line for line:

# %%
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
# We train live for one step on two on-policy pairs (the adapter, the policy, moves away from the
# reference), then check the hand-written loss against TRL's on two validation pairs.

# %%
live = dpo.DPORunConfig(max_steps=1, per_device_train_batch_size=2, learning_rate=1e-3)
set_seed(0)
trainer = dpo.dpo_trainer(sft_model, tokenizer, pairs.on_policy_rows("train", 2), [], live, tempfile.mkdtemp())
trainer.remove_callback(PrinterCallback)  # the log is read from trainer.state below, rounded
print(f"TRL made a second reference model: {trainer.ref_model is not None}; "
      f"adapters in the policy: {list(trainer.model.peft_config)}")
trainer.train()
for entry in trainer.state.log_history[:-1]:
    print({k: round(v, 4) for k, v in entry.items() if k.startswith(("rewards/", "loss", "step"))})

# %%
policy = trainer.model.eval()
check = pairs.on_policy_rows("validation", 2)
tokenized = trainer._prepare_dataset(Dataset.from_list([to_trl(p) for p in check]), tokenizer, trainer.args, "check")
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
mine = dpo.dpo_loss(logps[:n], logps[n:], ref_logps[:n], ref_logps[n:], beta=live.beta)
print(f"{'':20s} {'by hand':>10s} {'TRL':>10s}")
print(f"{'loss':20s} {mine.loss.item():10.6f} {trl_loss:10.6f}")
for key, value in dpo.logged_rewards(mine).items():
    print(f"{key:20s} {value:10.6f} {trl_logged[key]:10.6f}")
diff = max([abs(mine.loss.item() - trl_loss)] + [abs(v - trl_logged[k]) for k, v in dpo.logged_rewards(mine).items()])
print(f"max |by hand − TRL| = {diff:.1e}")
assert diff < 1e-4

# %% [markdown]
# LIVE_TEXT
#
# **What the disabled-adapter reference saves.** A separate reference model would be a second copy of
# every base weight, frozen, in memory for the whole run. We measure both: the bytes of the parameters,
# and what loading a second copy and running it once adds to this process's resident memory.

# %%
param_bytes = sum(p.numel() * p.element_size() for p in policy.get_base_model().parameters())
adapter_bytes = sum(p.numel() * p.element_size() for n_, p in policy.named_parameters() if "lora_" in n_)
rss_before = psutil.Process().memory_info().rss
second_copy = load_base_model(name).eval()  # the untuned model: section 8's judge
with torch.no_grad():
    second_copy(input_ids=ours["input_ids"][:1])  # one forward pass: the weights, memory-mapped from disk, are read
rss_after = psutil.Process().memory_info().rss
print(f"reference as a second model: {param_bytes / 1e6:.0f} MB of float32 parameters "
      f"({count_parameters(second_copy):,} parameters)")
print(f"reference as the adapter switched off: 0 extra bytes (the LoRA adapter itself: {adapter_bytes / 1e6:.1f} MB)")

# %% tags=["nbval-ignore-output"]
# resident memory depends on the machine's load and page cache: between 0.8× and 1.0× on a shared CPU
print(f"loading and running one grew this process's resident memory by {(rss_after - rss_before) / param_bytes:.1f}× "
      "the parameters' bytes")

# %% [markdown]
# The price is compute, not memory: the reference forward pass still runs, inside `disable_adapter()`, on
# the same weights. On a 7B model in 16-bit, two bytes per parameter, the second copy would be
# 2 × 7 = 14 GB, which is what the adapter trick saves on a single GPU. The long runs below go one step
# further: every run trains on the same pairs from the same reference, so `dpo.reference_logps` computes
# log π_ref of every training pair once, and each run hands the numbers to TRL as its precomputed
# reference (`precompute_ref_log_probs`; tests/test_dpo.py checks they equal TRL's own pass).

# %% [markdown]
# ## 3 · How large a learning rate?
#
# TRL's `DPOConfig` defaults to a learning rate of 1e-6, a value for updating every weight of a model;
# a LoRA adapter, whose few weights start at B = 0, usually needs far more. `course dpo-sweep` measured it:
# each arm — an objective at a learning rate — trained with seed 0 for the same steps on the same pairs,
# and judged on the **validation** prompts (the test prompts stay unseen until the choice is made):
# preference accuracy on the validation pairs, the mean log-ratio log π/π_ref of their chosen answers, the
# KL divergence from lesson 06's model, the share of greedy answers in the docstring format, and the win
# rate of those answers against lesson 06's own by the rule, with its standard error. Besides plain DPO
# (`loss_type="sigmoid"`), the sweep has **DPO + SFT**, section 5's remedy, at the learning rates where
# DPO moved the model: each objective gets its own learning rate.

# %%
sweep = load_results("dpo_sweep")
cfg = sweep["config"]
print(f"dpo_sweep.json: made by `{sweep['command']}` in {sweep['wall_seconds'] / 60:.0f} min; {cfg['max_steps']} steps "
      f"of {cfg['per_device_train_batch_size']} pairs ({sweep['train_pairs']} training pairs), β = {cfg['beta']}, "
      f"LoRA r = {cfg['r']} on all linear layers, constant learning rate")
HEAD = (f"{'accuracy':>9s} {'chosen log-ratio':>17s} {'KL to SFT':>10s} {'format':>7s} {'no final .':>11s} "
        f"{'names':>6s} {'ROUGE-L':>8s} {'win rate vs SFT ± s.e.':>23s} {'changed':>8s}")


def row(label: str, a: dict) -> str:
    """One model's held-out measurements, as the tables of this lesson print them."""
    w, n = a["win_rate"], len(a["answers"])
    return (f"{label:18s} {a['accuracy']:9.3f} {a['chosen_logratio']:17.2f} {a['kl']:10.4f} {a['format_rate']:7.0%} "
            f"{sum(not x.endswith('.') for x in a['answers']):6d} of {n} {a['names']:6.2f} {a['rouge_l']:8.3f} "
            f"{w['win_rate']:15.3f} ± {w['se']:.3f} {a['changed']:5d}/{n}")


def sft_row(split: str) -> str:
    """Lesson 06's model on the same measurements (its answers are the 'before' of every win rate)."""
    rows, stats = pairs.sample_rows(split), made["splits"][split]
    parts = [pairs.score_parts(r["sft_answer"], r["prompt"], r["reference"]) for r in rows]
    return (f"{'SFT (before)':18s} {stats['sft_pair_accuracy']['accuracy']:9.3f} {0:17.2f} {0:10.4f} "
            f"{stats['sft_greedy_format_rate']:7.0%} {sum(not r['sft_answer'].endswith('.') for r in rows):6d} of "
            f"{len(rows)} {np.mean([p['names'] for p in parts]):6.2f} {np.mean([p['rouge_l'] for p in parts]):8.3f}")


print(f"{'validation':18s} " + HEAD)
print(sft_row("validation"))
for r in sweep["runs"]:
    print(row(f"{r['loss']} @ {r['learning_rate']:g}", r["after"]))
print("picked, per objective (highest validation win rate):", sweep["best_learning_rate"])

# %% [markdown]
# Read down the table:
#
# - At TRL's default learning rate, 1e-6, nothing moves in 32 steps: no greedy answer changes (a win rate of
#   0.5, every prompt a tie) and the KL divergence from lesson 06's model is 0 to four decimals.
# - At 1e-4 the adapter barely moves (KL 0.0018 nats per token). Six answers of 24 change, and the rule
#   scores every one of them lower (0.375 ± 0.045): a small random change to the greedy answer — the
#   model's likeliest — is more often worse than better.
# - At 1e-3 DPO moves the model: the validation preference accuracy rises from 0.667 to 0.708 and the
#   answers name far more of their function's parameters (0.93 against 0.65). But the chosen answers
#   became *less* likely (a mean log-ratio of −7.17 nats), and the final full stop went with them: 17 of
#   24 answers now end without one and fail the format, and the win rate is 0.188 ± 0.079. At 5e-3 the
#   model collapses (KL 7.87 nats per token; no answer in the format).
# - DPO + SFT at 1e-3 moves the preference as far (0.708), makes the chosen answers *more* likely (+1.72),
#   keeps every answer in the format and names more parameters (0.72) — yet its win rate, 0.479 ± 0.082,
#   is a tie: ROUGE-L with the real docstrings fell (0.251 against 0.286). At 5e-3 it drifts as well.
#
# No arm's answers beat lesson 06's on validation. DPO's own pick is 1e-6, where nothing changes; DPO +
# SFT's is 1e-3, which is also where plain DPO moves the model. `course dpo` trains both there, over three
# seeds, on the held-out prompts: the effect, the displacement and its remedy, each with its spread.

# %% [markdown]
# ## 4 · Before and after, over three seeds
#
# `course dpo` trained DPO and DPO + SFT at the learning rate the sweep picked for DPO + SFT, which is also
# one where plain DPO moves the model, with three seeds each (a different LoRA initialisation and batch
# order), and measured every run on the **held-out** prompts: the rule's score of its greedy answers and
# its parts, the **win rate** against lesson 06's greedy answers (1 for a better score, ½ for the same, 0
# for a worse one, averaged over prompts), the preference accuracy on the held-out pairs, and the drift
# from lesson 06's model. A win rate on n prompts is a mean of n numbers: its standard error is their
# standard deviation over √n — about √(p(1 − p)/n) without ties, 0.07 at p = 0.5 and n = 48. The three
# seeds are averaged per prompt first (they answer the same prompts), and the 95 % interval is the win
# rate ± 1.96 standard errors.

# %%
main = load_results("dpo")
print(f"dpo.json: made by `{main['command']}` in {main['wall_seconds'] / 60:.0f} min")
print(f"{'held out':18s} " + HEAD)
print(sft_row("test"))
sft_rows = pairs.sample_rows("test")
for r in main["runs"]:
    print(row(f"{r['loss']} seed {r['seed']}", r["after"]))
print()
for arm, w in main["win_rate"].items():
    print(f"{arm:16s} win rate over {w['seeds']} seeds and {w['n']} held-out prompts: {w['win_rate']:.3f} ± {w['se']:.3f} "
          f"(s.e.), 95 % interval [{w['ci95'][0]:.3f}, {w['ci95'][1]:.3f}]")
by_arm = {loss: [r for r in main["runs"] if r["loss"] == loss] for loss in ("dpo", "dpo+sft")}
for i in range(3):
    r = sft_rows[i]
    print(f"\n{r['prompt']!r}\n  real:           {r['reference']!r}\n  SFT:            {r['sft_answer']!r}")
    for loss, runs in by_arm.items():
        print(f"  {loss + ', seed 0:':15s} {runs[0]['after']['answers'][i]!r}")

# %% [markdown]
# On the held-out prompts **DPO + SFT beats lesson 06's model**: over three seeds its answers win 0.604 of
# the comparisons, with a standard error of 0.045, and the 95 % interval, [0.517, 0.692], excludes 0.5.
# Each seed alone is above 0.5 too (0.573, 0.604, 0.635, each ± 0.056). What moved is what the pairs
# carry: the answers name more of their function's parameters (0.59 to 0.67 of them, against 0.57),
# every answer but one stays in the format, and ROUGE-L with the real docstrings stays where it was (0.26):
# a preference between the model's own answers cannot teach it what the functions do. The held-out
# preference accuracy hardly moves (0.723 to 0.766, against 0.745 before): DPO raised the chosen answers
# of the *training* pairs; which of two held-out answers the model finds likelier changed on a few pairs
# only, and the greedy answers, the model's single likeliest reply, are what the win rate scores.
#
# **Plain DPO**, at the same learning rate, tells a different story with every seed: win rates of 0.198,
# 0.552 and 0.667, pooled 0.472 ± 0.043 — a tie on average, with seeds further apart than any one run's
# standard error. Seed 0 stopped writing the final full stop (35 of 48 answers end without it), seed 2 did
# not. One seed would have told either story; this is why the runs are repeated.

# %% [markdown]
# ## 5 · The chosen answers became less likely: likelihood displacement, and DPO + SFT
#
# DPO's loss sees only the *difference* of two log-ratios. Nothing in it asks the chosen answer to become
# more likely, and on many datasets it does not: the margin grows because the rejected answer falls
# faster, while the chosen one falls too. Pal et al. (2024, "Smaug") showed this failure mode and Razin et
# al. (2024) named it **likelihood displacement**: the probability mass leaves both answers for others
# neither preferred nor rejected. The training log of every run shows it (TRL logs `logps/chosen` and
# `logps/rejected`, the policy's summed log-probabilities of each batch's answers):

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), sharey=True)
for ax, (loss, label) in zip(axes, (("dpo", "DPO"), ("dpo+sft", "DPO + SFT"))):
    for key, color in (("logps/chosen", "tab:green"), ("logps/rejected", "tab:red")):
        for r in by_arm[loss]:
            steps, values = np.array(r["curve"]["step"]), np.array(r["curve"][key])
            window = np.ones(8) / 8  # a running mean over 8 steps: each step sees 2 pairs
            ax.plot(steps[7:], np.convolve(values, window, mode="valid"), color=color, alpha=0.7,
                    label=f"{key} (seed {r['seed']})")
    ax.set(title=f"{label}: log π of the batch's answers", xlabel="optimizer step", ylabel="summed log-probability (nats)")
    ax.legend(fontsize=7)
fig.suptitle("Training batches of `course dpo`, running mean over 8 steps (each batch: 2 pairs)")
plt.tight_layout()
plt.show()

# %% [markdown]
# The remedy most recipes use is to keep a supervised term on the chosen answers: DPO plus the negative
# log-likelihood of y_w's tokens, as in Pang et al. (2024, "Iterative Reasoning Preference Optimization").
# TRL 1.16 has no `rpo_alpha` option any more (its `DPOConfig` has no such field); it combines losses
# instead: `loss_type=["sigmoid", "sft"]` adds the mean token NLL of the chosen completions, weighted by
# `loss_weights` (its docstring's example of a weighted mix is MPO, Wang et al. 2024). `dpo.LOSSES` names
# the arms, and tests/test_dpo.py checks TRL's "sft" term against the NLL written out. `course dpo`
# trained it beside plain DPO, three seeds each (section 4's table); over the seeds:

# %%
print(f"{'held out, 3 seeds':18s} {'chosen log-ratio':>17s} {'rejected log-ratio':>19s} {'margin':>14s} "
      f"{'KL to SFT':>15s} {'answers in format':>18s}")
for loss, label in (("dpo", "DPO"), ("dpo+sft", "DPO + SFT")):
    cells = [[r["after"][k] for r in by_arm[loss]] for k in ("chosen_logratio", "rejected_logratio")]
    cells.append([c - j for c, j in zip(*cells)])  # the log-ratio margin, what DPO's loss pushes up
    cells += [[r["after"][k] for r in by_arm[loss]] for k in ("kl", "format_rate")]
    print(f"{label:18s} " + " ".join(f"{np.mean(c):{w}.{d}f} ± {np.std(c, ddof=1):.{d}f}"
                                     for c, w, d in zip(cells, (10, 12, 7, 8, 11), (2, 2, 2, 3, 2))))
print("(mean ± standard deviation over the seeds; log-ratios: mean log π/π_ref of the held-out pairs' answers, in nats)")
train_pairs = pairs.on_policy_rows("train")
print(f"training pairs whose answer ends with a full stop: chosen {sum(p['chosen'].endswith('.') for p in train_pairs)}, "
      f"rejected {sum(p['rejected'].endswith('.') for p in train_pairs)}, of {len(train_pairs)}")

# %% [markdown]
# DISPLACEMENT_TEXT
#
# ## 6 · IPO and ORPO beside DPO
#
# **IPO** (Azar et al. 2023) starts from the same comparison data but drops the Bradley–Terry model. When
# a preference is deterministic — a rule that always prefers the same answer, as ours — DPO's optimum puts
# the rejected answer's probability at zero and its implicit reward margin has no finite target. IPO
# regresses the log-ratio margin to a fixed value instead, 1/(2τ), with a squared loss. In TRL it is
# `loss_type="ipo"` with β as τ, and TRL divides each log-ratio by the completion's length first (its
# comment says the authors confirmed this form); at β = 0.1 the target is 5 nats per token.
#
# **ORPO** (Hong et al. 2024, Odds Ratio Preference Optimization) needs no reference model: an SFT loss on
# the chosen answer plus λ times −log σ of the log odds ratio of chosen against rejected, where the odds
# are p/(1 − p) of the *length-normalised* sequence probability. TRL 1.16 ships it as
# `trl.experimental.orpo.ORPOTrainer`, and as shipped its SFT term is taken "over the full prompt and
# response" (its own comment in `concatenated_forward`: the labels are the input ids with only padding
# masked), and its `add_eos_token_if_needed` appends a second `<|im_end|>` after the template's
# `<|im_end|>` and newline. That is the whole-text loss lesson 06 compared, with a tokenization DPO does
# not use. `course dpo-variants` ran ORPO as `course_lib.tuning.orpo.orpo_trainer` builds it by default:
# the extra token dropped, so the batches are DPO's token for token, and the SFT term over the completion
# tokens only (tests/test_dpo.py checks both against `dpo.pair_batch`); λ = β = 0.1, TRL's default.

# %%
variants = load_results("dpo_variants")
print(f"dpo_variants.json: made by `{variants['command']}` in {variants['wall_seconds'] / 60:.0f} min")
print(f"{'held out, seed 0':18s} {'chosen log-ratio':>17s} {'rejected':>9s} {'accuracy':>9s} {'KL to SFT':>10s} "
      f"{'score':>6s} {'format':>7s} {'win rate vs SFT ± s.e.':>23s}")
arms = {"DPO": by_arm["dpo"][0], "DPO + SFT": by_arm["dpo+sft"][0]}
arms.update({{"ipo": "IPO", "orpo": "ORPO"}[r["loss"]]: r for r in variants["runs"]})
for label, r in arms.items():
    a, w = r["after"], r["after"]["win_rate"]
    print(f"{label:18s} {a['chosen_logratio']:17.2f} {a['rejected_logratio']:9.2f} {a['accuracy']:9.3f} {a['kl']:10.4f} "
          f"{a['score']:6.3f} {a['format_rate']:7.0%} {w['win_rate']:15.3f} ± {w['se']:.3f}")
print(f"(every arm at learning rate {variants['runs'][0]['learning_rate']:g}, β = {variants['config']['beta']}, "
      f"{variants['config']['max_steps']} steps; log-ratios: mean log π/π_ref of the held-out pairs' answers, in nats)")

# %% [markdown]
# VARIANTS_TEXT

# %% [markdown]
# ## 7 · Evaluation beyond the loss
#
# The DPO loss and its rewards are measured against the reference, on pairs: they say the policy moved in
# the preferred direction, not that its answers got better. The answers are what the sections above
# scored: each model's greedy answer to each held-out prompt, by the same rule that made the pairs, against
# lesson 06's answer to the same prompt. That is a **pairwise win rate** with a program as the judge, and
# it is only as good as the rule: an answer can name every parameter and match the real docstring's words
# while saying something false. Overlap metrics (ROUGE-L, exact match) score agreement with one reference;
# they cannot see whether an answer is true, useful or clear.
#
# ## 8 · A judge you can run
#
# For open-ended answers there is no reference and no rule, and the usual evaluator is a stronger LLM asked
# which of two answers is better. Zheng et al. (2023, "Judging LLM-as-a-Judge with MT-Bench and Chatbot
# Arena") found that GPT-4's verdicts agreed with human experts' about as often as the experts agreed with
# each other (over 80 %), and documented three biases a judge brings: **position** (favouring the first,
# or the second, answer shown), **verbosity** (favouring the longer answer) and **self-enhancement**
# (favouring answers like its own). Their remedy for the first: ask twice with the order swapped, and count
# a verdict that changes with the order as a tie.
#
# The only LLM this notebook can run is SmolLM2-135M-Instruct itself. `judge.judge_pairs` asks the untuned
# model (not lesson 06's, which wrote the answers) which of two docstrings is better, and reads its verdict
# from the next-token logits of "A" and "B" — no sampling, so it repeats. Live, on three held-out pairs,
# in both orders:

# %%
print(judge.judge_prompt(tokenizer, pairs.on_policy_rows("test")[0], chosen_first=True))
few = pairs.on_policy_rows("test", 3)
for p, v in zip(few, judge.judge_pairs(second_copy, tokenizer, few)):
    print(f"P(A) with the rule's choice as A: {v['p_a_chosen_first']:.3f}; as B: {v['p_a_chosen_second']:.3f}  "
          f"-> {'agrees' if v['p_a_chosen_first'] > 0.5 > v['p_a_chosen_second'] else 'disagrees' if v['p_a_chosen_second'] > 0.5 > v['p_a_chosen_first'] else 'flips with the order'}")

# %%
verdicts = load_results("judge")
s = verdicts["summary"]
print(f"judge.json: made by `{verdicts['command']}` in {verdicts['wall_seconds']:.0f} s, on the {s['pairs']} held-out pairs")
print(f"agrees with the rule in both orders:     {s['agreement']:.3f}")
print(f"prefers the rule's rejected answer:      {s['disagreement']:.3f}")
print(f"verdict flips with the order:            {s['flip_rate']:.3f}")
print(f"share of all verdicts that are 'A':      {s['first_position_rate']:.3f}")
print(f"agreement, a flip counted as a tie:      {s['agreement_ties_half']:.3f}  (a coin: 0.5)")
print(f"mean P(A), the rule's choice shown as A:  {np.mean([v['p_a_chosen_first'] for v in verdicts['verdicts']]):.3f}; "
      f"shown as B: {np.mean([v['p_a_chosen_second'] for v in verdicts['verdicts']]):.3f}")
print(f"longer answer wins (consistent verdicts): {s['longer_wins'] if s['longer_wins'] is not None else 'no consistent verdict'}")
print(f"P(A) higher with the rule's choice as A:  {s['leans_to_chosen']:.3f}  (the position preference cancels)")

# %% [markdown]
# The 135M judge answers "A" on every pair, in both orders: its P(A) is about 0.76 whether the rule's choice
# is shown first or second, so its verdict flips with the order every time, and counting a flip as a tie,
# as Zheng et al. (2023) do, leaves it at exactly 0.5 — a coin. Even the difference that cancels the
# position preference carries nothing: P(A) is higher with the rule's choice shown as A on LEANS of the
# pairs, within one standard error (about 0.07 on 47 pairs) of chance. That is what a model of this size can
# do as a judge of two docstrings: nothing measurable — it cannot hold a function's signature and two
# answers in mind and compare them. A strong judge (GPT-4 in Zheng et al. 2023) agrees with people most of
# the time on open-ended chat, which is why AI feedback can replace human ranking (UltraFeedback, Cui et al.
# 2023); it keeps its biases, so ask in both orders, report the flip rate beside the verdicts, and measure
# its agreement on a sample labelled by people — or, for a task like ours, by the rule.

# %% [markdown]
# ## 9 · RLHF, DPO, IPO, ORPO, KTO, GRPO on one page
#
# | method | what it optimises | needs a reward model | needs a reference model | data |
# |---|---|---|---|---|
# | **RLHF** (Ouyang et al. 2022, InstructGPT) | PPO on a learned reward r(x, y), minus β·KL to the SFT model | yes, trained on human comparisons | yes (the KL term) and a value model (PPO's critic) | comparisons for the reward model; prompts to sample answers for |
# | **DPO** (Rafailov et al. 2023) | −log σ(β·[log-ratio(y_w) − log-ratio(y_l)]): the RLHF objective's optimum, fitted directly | no (the policy's log-ratio is the implicit reward) | yes, frozen (here: the adapter off) | pairs (prompt, chosen, rejected), fixed during training; here sampled from the model first |
# | **IPO** (Azar et al. 2023) | (log-ratio margin − 1/(2τ))²: a bounded target for the margin | no | yes | pairs, as DPO |
# | **ORPO** (Hong et al. 2024, Odds Ratio Preference Optimization) | SFT loss on y_w plus λ·(−log σ(log odds(y_w) − log odds(y_l))), odds = p/(1−p) with p the **length-normalised** probability exp(mean token log-prob) | no | **no** | pairs; SFT and preference in one stage |
# | **KTO** (Ethayarajh et al. 2024, Kahneman–Tversky Optimization) | a prospect-theory value of each answer's log-ratio against a reference point, desirable up, undesirable down | no | yes | **unpaired** answers labelled desirable or undesirable |
# | **GRPO** (Shao et al. 2024, DeepSeekMath, Group Relative Policy Optimization) | PPO-style clipped policy gradient; each answer's advantage is its reward normalised by the mean and std of a *group* of answers sampled for the same prompt | a reward function (a model or a rule: a checker, unit tests) | in the paper yes (a KL term); TRL's `GRPOConfig` defaults to `beta=0.0` and then loads none; **no value model** | prompts; several samples per prompt, generated during training |
#
# DPO, IPO and ORPO learn from pairs fixed before training (offline, even when, as here, the pairs were
# sampled from the model once); RLHF's PPO and GRPO sample from the policy as it trains (online), which
# costs generation at every step — the expensive part on this CPU. Sampling and scoring once, training,
# then sampling again from the new model is the middle road ("iterative" DPO, as in Pang et al. 2024).
# KTO suits feedback that arrives as thumbs up or down. A rule like ours is exactly the reward GRPO's
# rule-based setups use, group-normalised over several samples of the same prompt — a later lesson.

# %% [markdown]
# ## Summary
#
# SUMMARY_TEXT
#
# **Exercises:** [exercises/07_preference_tuning.ipynb](../exercises/07_preference_tuning.ipynb) — an
# on-policy pair from samples and a rule, sequence log-probabilities over the completion, the DPO loss, a
# win rate's standard error and interval, and a decision read from the runs.
