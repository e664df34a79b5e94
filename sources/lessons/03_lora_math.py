# %% [markdown]
# # Lesson 03 — The mathematics of LoRA
#
# **Goal.** Understand LoRA well enough to write it yourself: the update W' = W + BA, how many
# parameters it trains, why a low rank can be enough, how it is initialised and scaled, and why a
# merged adapter costs nothing at inference. Then check that our from-scratch layer
# (`course_lib.lora`) gives the same numbers as 🤗 peft.
#
# **Runtime.** Under a minute on a 2-core laptop CPU (about 35 s measured, course-tiny); the full
# rank ablation is cached in `data/results/lora_rank_ablation.json` by
# `OMP_NUM_THREADS=1 course lora-ablation` (several minutes).
#
# Sources: LoRA is Hu et al., ICLR 2022 (arXiv 2106.09685); rsLoRA is Kalajdzievski 2023
# (arXiv 2312.03732); DoRA is Liu et al., ICML 2024 (arXiv 2402.09353).

# %%
import transformers

from course_lib.doctor import versions_line
from course_lib.models import set_threads

set_threads()  # one CPU thread (COURSE_THREADS): the same numbers on every machine
transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bar, frozen at 0 % in the saved page
print(versions_line())

# %%
import math

import matplotlib.pyplot as plt
import torch

from course_lib.data import data_dir, instruction_text, load_course_dataset
from course_lib.lora import (ALL_LINEAR_TARGETS, ATTENTION_TARGETS, LinearWithLoRA, LoraConfig, add_lora,
                             lora_parameter_count, merge_lora, unmerge_lora)
from course_lib.metrics import perplexity
from course_lib.models import count_parameters, get_device, load_base_model, load_tokenizer, set_seed
from course_lib.encoding import collator_for, tokenize_causal
from course_lib.training import TrainConfig, train
from course_lib.vram import PRESETS, model_shape

device = get_device()  # course_lib runs the CPU with one thread (COURSE_THREADS): same numbers everywhere
set_seed(0)

# %% [markdown]
# ## 1. W' = W + BA, and what it costs
#
# A linear layer holds a d × k matrix W (d outputs, k inputs). Full fine-tuning learns a change ΔW of
# the same size. LoRA freezes W and learns ΔW as a product of two thin matrices (Hu et al. §4.1):
#
# $$W' = W + \frac{\alpha}{r}\, B A, \qquad B \in \mathbb{R}^{d\times r},\; A \in \mathbb{R}^{r\times k}.$$
#
# So each adapted matrix trains r·(d + k) numbers instead of d·k.

# %%
d = k = 4096
r = 16
full, lora = d * k, lora_parameter_count(d, k, r)
print(f"d·k     = {full:,}")
print(f"r·(d+k) = {lora:,}")
print(f"ratio   = {full / lora:.1f}×  (per matrix)")

# %% [markdown]
# Exactly 128× for one 4096 × 4096 matrix at r = 16 — not "about 127×" as some tutorials
# say, and per matrix, not per model. The whole model is a different count: the
# embeddings, norms and untargeted matrices are frozen, not shrunk. Per model, the totals below
# use each model's real shapes (Llama-2-7B's published config and course-tiny's own).

# %%
tiny_shape = model_shape(str(data_dir() / "models" / "course-tiny"))
for name, shape in (("course-tiny", tiny_shape), ("Llama-2-7B", PRESETS["llama-2-7b"])):
    print(f"{name}: {shape.parameters:,} parameters")
    for targets, label in ((("q_proj", "v_proj"), "q, v"), (ATTENTION_TARGETS, "q, k, v, o"),
                           (ALL_LINEAR_TARGETS, "all-linear")):
        for rr in (8, 64):
            n = shape.lora_parameters(rr, targets)  # r·(d+k) per targeted matrix, per layer
            print(f"  r={rr:2d} {label:11s} {n:>12,} trainable = {100 * n / shape.parameters:6.3f} % of the model")

# %% [markdown]
# For Llama-2-7B with r = 8 on q and v, LoRA trains about 4 million numbers — well under a
# tenth of a percent. On GPT-3 175B the paper reports 10,000× fewer trainable parameters and a
# checkpoint of 35 MB instead of 350 GB (r = 4 on Wq, Wv; abstract and §4.2). The model itself
# must still be in memory: lesson 04 does that accounting.
#
# ## 2. Why can a low rank be enough?
#
# LoRA bets that the *change* a fine-tune needs is close to low rank. We can look: fine-tune all of
# course-tiny for a few steps on the Alpaca-style instruction set, take ΔW = W_after − W_before of
# each matrix, and look at its singular values σ₁ ≥ σ₂ ≥ … . The best rank-r approximation of ΔW
# (Eckart–Young) keeps the share Σ_{i≤r} σᵢ² / Σ σᵢ² of its squared norm.

# %%
tok = load_tokenizer()
alpaca = load_course_dataset("alpaca")
train_rows = tokenize_causal(tok, [instruction_text(r) for r in alpaca["train"]], max_length=128)
eval_texts = [instruction_text(r) for r in alpaca["validation"].select(range(64))]
collate = collator_for(tok, "causal-lm")

model = load_base_model().to(device)
# only decoder layer 1 is analysed below: keeping a copy of every matrix would double a big model's memory
before = {n: p.detach().clone() for n, p in model.named_parameters() if p.ndim == 2 and ".layers.1." in n}
ft_cfg = TrainConfig(learning_rate=5e-4, max_steps=30, per_device_train_batch_size=8, disable_tqdm=True)
hist = train(model, train_rows, ft_cfg, collate_fn=collate)
print(f"full fine-tune: loss {hist.loss[0]:.3f} -> {hist.loss[-1]:.3f} in {ft_cfg.max_steps} steps")
delta = {n: (p.detach() - before[n]).float().cpu() for n, p in model.named_parameters() if n in before}
del model


# %%
def energy_kept(s: torch.Tensor, r: int) -> float:
    """Share of ||ΔW||² that the best rank-r approximation keeps."""
    e = s.pow(2)
    return (e[:r].sum() / e.sum()).item()


name_q = "model.layers.1.self_attn.q_proj.weight"
name_up = "model.layers.1.mlp.up_proj.weight"
torch.manual_seed(0)
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
for name, style in ((name_q, "-"), (name_up, "--")):
    s = torch.linalg.svdvals(delta[name])
    noise = torch.linalg.svdvals(torch.randn_like(delta[name]))  # same shape, no structure
    label = name.split(".")[-2]
    ax1.semilogy((s / s[0]).numpy(), style, label=f"ΔW {label}")
    ax1.semilogy((noise / noise[0]).numpy(), style, color="grey", alpha=0.6, label=f"random {label}")
    ranks = list(range(1, len(s) + 1))
    ax2.plot(ranks, [energy_kept(s, r) for r in ranks], style, label=f"ΔW {label}")
    ax2.plot(ranks, [energy_kept(noise, r) for r in ranks], style, color="grey", alpha=0.6, label=f"random {label}")
ax1.set(title="Singular values of ΔW (layer 1), normalised", xlabel="index i", ylabel="σᵢ / σ₁")
ax2.set(title="Share of ||ΔW||² kept by a rank-r approximation", xlabel="rank r", ylabel="share of squared norm")
ax1.legend(fontsize=8); ax2.legend(fontsize=8)
plt.tight_layout(); plt.show()

print("share of ||ΔW||² kept at rank r")
print(f"{'matrix':40s} " + " ".join(f"r={r:<3d}" for r in (1, 4, 16, 64)))
torch.manual_seed(0)
for name in sorted(delta):
    s = torch.linalg.svdvals(delta[name])
    print(f"{name:40s} " + " ".join(f"{energy_kept(s, r):5.2f}" for r in (1, 4, 16, 64)))
for name in (name_q, name_up):
    s = torch.linalg.svdvals(torch.randn_like(delta[name]))
    label = f"random matrix, {tuple(delta[name].shape)}"
    print(f"{label:40s} " + " ".join(f"{energy_kept(s, r):5.2f}" for r in (1, 4, 16, 64)))

# %% [markdown]
# Read the table and the plot rather than a slogan (course-tiny, 30 steps of full fine-tuning).
# At every rank, ΔW keeps much more of its squared norm than a random matrix of the same shape:
# at r = 4 the attention matrices keep 0.43–0.48 against 0.12 for noise, at r = 16 they keep
# 0.82–0.83 against 0.38. The spectrum of the change falls faster than noise's, so a rank well
# below 128 keeps most of it — but not all of it: the MLP matrices keep only 0.60–0.65 at r = 16,
# and r = 64 is needed for 0.92–0.99. Full fine-tuning does use more than a few directions;
# Biderman et al. (TMLR 2024, "LoRA Learns Less and Forgets Less") measure 10–100× higher-rank
# perturbations in full fine-tunes of large models. LoRA's bet is that the low-rank part is what
# the task needs; section 5 tests that bet.
#
# ## 3. Initialisation, scaling, dropout
#
# - **Init.** A is random (peft and the reference code use `kaiming_uniform_(A, a=√5)`; the paper's
#   text says Gaussian), **B = 0**. Then BA = 0: at step 0 the adapted model computes exactly what
#   the base model computes, and training starts from the pretrained behaviour.
# - **Scaling.** The update is multiplied by α/r. With α fixed you can change r without re-tuning
#   the learning rate much. rsLoRA (Kalajdzievski 2023) shows α/r shrinks the update too much at
#   high rank and uses α/√r instead (`use_rslora=True` in peft).
# - **Dropout** (`lora_dropout`) is applied to the input of the LoRA path only; the frozen path
#   sees the clean input.

# %%
model = load_base_model().to(device)
ids = torch.tensor([tok("def add(a, b):")["input_ids"]], device=device)
with torch.no_grad():
    logits_before = model(ids).logits
wrapped = add_lora(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.1, target_modules="all-linear"))
model.eval()
with torch.no_grad():
    logits_after = model(ids).logits
print(f"wrapped {len(wrapped)} linear layers; trainable {count_parameters(model, trainable_only=True):,} "
      f"of {count_parameters(model):,}")
print(f"max |logits change| at init (B = 0): {(logits_after - logits_before).abs().max().item():.1f}")
print(model.model.layers[0].self_attn.q_proj)

print("\nscaling for lora_alpha = 16:")
print(" r    alpha/r   alpha/sqrt(r)")
for rr in (1, 4, 16, 64):
    print(f"{rr:2d} {16 / rr:9.3f} {16 / math.sqrt(rr):12.3f}")

# %% [markdown]
# ## 4. Merging: zero extra latency
#
# After training, W ← W + (α/r)·BA turns the adapter back into a plain linear layer: the same
# shapes and the same cost as the base model (Hu et al. Table 1 shows that adapter layers, which
# cannot be merged, add 2–30 % latency). `unmerge()` subtracts it again, so one base model can
# switch between adapters.

# %%
set_seed(0)
for m in model.modules():
    if isinstance(m, LinearWithLoRA):
        torch.nn.init.normal_(m.lora_B.weight, std=0.02)  # pretend we trained: B ≠ 0
with torch.no_grad():
    y_unmerged = model(ids).logits
    merge_lora(model)
    y_merged = model(ids).logits
    unmerge_lora(model)
    y_again = model(ids).logits
print(f"merged vs unmerged: max |difference| {(y_merged - y_unmerged).abs().max().item():.1e} (float32 rounding)")
print(f"after unmerge:      max |difference| {(y_again - y_unmerged).abs().max().item():.1e}")

# %% tags=["nbval-ignore-output"]
import time


def ms_per_forward(m, n=20):
    with torch.no_grad():
        m(ids)
        t = time.perf_counter()
        for _ in range(n):
            m(ids)
    return 1000 * (time.perf_counter() - t) / n


t_unmerged = ms_per_forward(model)
merge_lora(model)
t_merged = ms_per_forward(model)
unmerge_lora(model)
print(f"forward unmerged {t_unmerged:.2f} ms, merged {t_merged:.2f} ms (timings vary from run to run)")

# %% [markdown]
# ## 5. Which rank? A rank ablation on course-tiny
#
# The paper's Table 6 (GPT-3, LoRA on Wq and Wv, WikiSQL) reports 73.4 / 73.3 / 73.7 / 73.8 / 73.5
# for r = 1 / 2 / 4 / 8 / 64: very low ranks were enough there. Here is a small live version (three
# ranks, 20 steps each, attention matrices, 64 validation examples), then the full sweep from
# the cached file (120 steps per run, 200 validation examples).

# %%
from course_lib.experiments.lora_ablation import AblationConfig, lora_run

live = AblationConfig(max_steps=20)  # the cached sweep's settings, with 20 steps instead of 120


base_ppl = perplexity(load_base_model().to(device), tok, eval_texts)
print(f"base model: validation perplexity {base_ppl:.2f}")
for rr in (1, 8, 64):
    run = lora_run(live, LoraConfig(r=rr, lora_alpha=live.lora_alpha, target_modules=ATTENTION_TARGETS),
                   alpaca["train"], eval_texts, tok)
    n, ppl = run["trainable_parameters"], run["perplexity"]
    print(f"r={rr:2d}: {n:6,} trainable, validation perplexity {ppl:.2f}")

# %%
from course_lib.results import load_results

res = load_results("lora_rank_ablation")  # made by `course lora-ablation` (3–6 minutes)
rows = res["ranks"]
fig, ax = plt.subplots(figsize=(6.5, 3.8))
ax.plot([x["r"] for x in rows], [x["perplexity"] for x in rows], "o-", label="LoRA on q, k, v, o")
for x, marker in zip(res["budget"], ("s", "*")):  # the same 81,920 parameters, two ways
    ax.plot([x["r"]], [x["perplexity"]], marker, ms=9, ls="none",
            label=f"{x['targets']}, r = {x['r']} ({x['trainable_parameters']:,} parameters)")
ax.set_xscale("log", base=2)
ax.set_xticks([x["r"] for x in rows], [str(x["r"]) for x in rows])
ax.set(title=f"Rank ablation, course-tiny, {res['config']['max_steps']} steps (cached)\n"
             f"base model before training: {res['base_perplexity']:.1f} (off the chart)",
       xlabel="LoRA rank r (log scale)", ylabel="validation perplexity (lower is better)")
for x in rows:
    ax.annotate(f"{x['trainable_parameters']:,}", (x["r"], x["perplexity"]), fontsize=7,
                textcoords="offset points", xytext=(0, 6), ha="center")
ax.legend(fontsize=8); plt.tight_layout(); plt.show()
print(f"base perplexity {res['base_perplexity']:.2f}")
for x in rows + res["budget"]:
    print(f"{x['targets']:10s} r={x['r']:2d}: {x['trainable_parameters']:7,} trainable, "
          f"perplexity {x['perplexity']:.2f}")

# %% [markdown]
# What the cached sweep shows: every rank takes the validation perplexity from 147.66 to below
# 12, and most of the gain is already there at r = 8 (8.70). Going on to r = 64, with 8× more
# trainable parameters, only reaches 8.48. Unlike the paper's flat WikiSQL numbers, r = 1 (11.36)
# is clearly worse here: on a small model in a short run, one direction per matrix is too few.
# The live run above shows the same order (23.85, 18.68, 18.10 for r = 1, 8, 64).
#
# The last two lines are the fixed-budget question of the paper's Table 5: with the same number
# of trainable parameters (81,920 on course-tiny), is it better to put a high rank on the
# attention matrices only, or a lower rank on every linear layer? Here rank 8 on all seven linear
# layers reached 7.75 against 8.62 for rank 20 on the attention matrices: spreading the budget
# won, as in Table 5, and as the QLoRA paper (§4) found when it needed LoRA on all linear layers
# to match full fine-tuning. One seed on one tiny model: an illustration, not a measurement of
# how large the effect is in general.
#
# ## 6. A slider: rank against parameters and reconstruction error
#
# Move r and see the trainable parameters of one course-tiny matrix and how much of the full
# fine-tune's ΔW (section 2) the best rank-r matrix fails to capture. (Widgets need a live kernel;
# the saved page shows the picture at r = 8.)

# %% tags=["nbval-ignore-output"]
import ipywidgets as widgets
from IPython.display import display

s_q = torch.linalg.svdvals(delta[name_q])
s_up = torch.linalg.svdvals(delta[name_up])


def rank_figure(r: int = 8):
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.2))
    dq, kq = delta[name_q].shape
    du, ku = delta[name_up].shape
    a1.bar(["q_proj full", "q_proj LoRA", "up_proj full", "up_proj LoRA"],
           [dq * kq, lora_parameter_count(dq, kq, r), du * ku, lora_parameter_count(du, ku, r)])
    a1.set(title=f"Trainable parameters at r = {r}", xlabel="matrix (layer 1)", ylabel="parameters")
    ranks = range(1, len(s_q) + 1)
    for s, label in ((s_q, "q_proj"), (s_up, "up_proj")):
        a2.plot(ranks, [math.sqrt(max(0.0, 1 - energy_kept(s, x))) for x in ranks], label=label)
    a2.axvline(r, color="k", ls=":")
    a2.set(title="Relative error ||ΔW − ΔW_r|| / ||ΔW||", xlabel="rank r", ylabel="relative Frobenius error")
    a2.legend(); fig.tight_layout()
    plt.close(fig)  # shown by display() below, not a second time at the end of the cell
    return fig


# One figure: drawn here (the saved page shows r = 8), redrawn in place when the slider moves.
figure = display(rank_figure(8), display_id=True)
slider = widgets.IntSlider(value=8, min=1, max=64, step=1, description="rank r")
slider.observe(lambda change: figure.update(rank_figure(change["new"])), names="value")
display(slider)

# %% [markdown]
# ## 7. Our layer and peft, side by side
#
# `course_lib.lora.LinearWithLoRA` uses peft's names (`lora_A`, `lora_B`, `scaling`,
# `get_delta_weight`, `merge`). Give peft's `lora.Linear` the same A and B and both give the same
# output (the test suite checks this too, `tests/test_lora.py`).

# %%
import peft
from peft.tuners.lora import Linear as PeftLoraLinear

set_seed(0)
base = torch.nn.Linear(128, 128)
ours = LinearWithLoRA(base, r=8, lora_alpha=16)
torch.nn.init.normal_(ours.lora_B.weight, std=0.1)
theirs = PeftLoraLinear(torch.nn.Linear(128, 128), "default", config=peft.LoraConfig(r=8, lora_alpha=16), r=8,
                        lora_alpha=16)
theirs.base_layer.load_state_dict(base.state_dict())
theirs.lora_A["default"].weight.data.copy_(ours.lora_A.weight)
theirs.lora_B["default"].weight.data.copy_(ours.lora_B.weight)
x = torch.randn(4, 128)
with torch.no_grad():
    print(f"scaling: ours {ours.scaling}, peft {theirs.scaling['default']}")
    print(f"output max |difference|: {(ours(x) - theirs(x)).abs().max().item():.1e}")
    print(f"ΔW max |difference|:     {(ours.get_delta_weight() - theirs.get_delta_weight('default')).abs().max().item():.1e}")

# %% [markdown]
# ## 8. Beyond plain LoRA: DoRA
#
# **DoRA** is *Weight-Decomposed Low-Rank Adaptation* (Liu et al., ICML 2024) — not "double
# low-rank", as it is sometimes miscalled. It writes each weight as a magnitude
# times a direction, W = m · V/‖V‖ (per output column), trains the magnitude vector m directly and
# applies LoRA to the direction V. Like LoRA it can be merged after training. In peft it is one
# flag: `LoraConfig(..., use_dora=True)`.
#
# ## Summary
#
# - LoRA trains r·(d+k) instead of d·k per adapted matrix: exactly 128× fewer for 4096 × 4096 at
#   r = 16. On Llama-2-7B that is 0.062 % of the model at r = 8 on q, v and 2.4 % at r = 64 on all
#   linear layers; on a tiny model such as course-tiny the share is far larger (up to 48 %).
# - The change a full fine-tune makes is concentrated in few directions — far more than in a random
#   matrix (section 2) — which is why a low rank can work; it is not exactly low rank.
# - On course-tiny, r = 8 gets most of the gain of r = 64, and at a fixed parameter budget LoRA on
#   all linear layers beat a higher rank on attention alone (section 5).
# - B = 0 at init keeps the model unchanged at step 0; α/r (or α/√r with rsLoRA) scales the update;
#   dropout acts on the LoRA path only; merging removes all inference overhead.
# - Our from-scratch layer and peft give the same outputs and the same ΔW (section 7).
#
# **Exercises:** [exercises/03_lora_math.ipynb](../exercises/03_lora_math.ipynb) — count LoRA parameters, write a LoRA forward pass,
# merge an adapter, compare scalings, and budget ranks. Next, lesson 04 shrinks the frozen base
# model to 4 bits (QLoRA).
