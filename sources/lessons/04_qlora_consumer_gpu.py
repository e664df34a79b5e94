# %% [markdown]
# # Lesson 04 — QLoRA: fine-tuning on a consumer GPU
#
# **Goal.** Build NF4 by hand and check it against bitsandbytes; compare it with int4 and FP4 on
# real weights; count what double quantization saves; fine-tune course-tiny with QLoRA through
# `BitsAndBytesConfig` + peft; and learn to predict training memory part by part, so that "will it
# fit on my card?" becomes arithmetic instead of folklore.
#
# **Runtime.** Under a minute on a 2-core CPU (about 30 s measured). Everything runs on the CPU here (bitsandbytes ≥ 0.45
# does NF4 on the CPU) and unchanged on a CUDA GPU with `COURSE_MODEL`.
#
# Source: Dettmers et al., *QLoRA*, NeurIPS 2023 (arXiv 2305.14314).

# %%
import transformers

from course_lib.doctor import versions_line
from course_lib.models import set_threads

set_threads()  # one CPU thread (COURSE_THREADS): the same numbers on every machine
import warnings

transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bar, frozen at 0 % in the saved page
# peft's prepare_model_for_kbit_training still calls a transformers alias deprecated in 5.x; harmless here
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
print(versions_line())

# %%
import json

import matplotlib.pyplot as plt
import torch

from course_lib.data import data_dir, instruction_text, load_course_dataset
from course_lib.models import count_parameters, get_device, load_base_model, load_tokenizer, set_seed
from course_lib.metrics import perplexity
from course_lib.quant import (bits_per_parameter, dequantize_blockwise, dequantize_nf4, double_dequantize,
                              double_quantize, fp4_table, int4_table, keep_cpu_4bit_trainable, nf4_table,
                              quantize_blockwise, quantize_nf4)
from course_lib.encoding import collator_for, tokenize_causal
from course_lib.training import TrainConfig, train
from course_lib.memtrack import measure_peak_memory
from course_lib.vram import PRESETS, VramConfig, estimate_memory

device = get_device()
set_seed(0)

# %% [markdown]
# ## 1. NF4 by hand
#
# Pretrained weights are roughly normally distributed around 0. A 4-bit code has 16 values; NF4
# puts them at *quantiles* of N(0, 1), so each value stands for an equal share of a normal
# distribution (QLoRA §3). bitsandbytes builds 8 positive values from Φ⁻¹ of 9 evenly spaced
# probabilities between 0.9677 and 0.5, 7 negative ones from the other tail, adds an exact 0 (so
# zero and padding stay exact) and divides by the largest. `course_lib.quant.nf4_table` does this
# with `torch.special.ndtri` (Φ⁻¹):

# %%
import bitsandbytes.functional as bnbF

table = nf4_table()
print("NF4 values:", [round(v, 4) for v in table.tolist()])
print(f"max |ours − bitsandbytes|: {(table - bnbF.get_4bit_type('nf4', device='cpu')).abs().max().item():.1e}")

# %% [markdown]
# **Blockwise absmax.** One outlier would waste the code for a whole matrix, so weights are cut
# into blocks of 64; each block is divided by its absolute maximum (to [-1, 1]), each value is
# rounded to the nearest NF4 value and stored as its 4-bit index, and the block keeps its absmax
# in float32. Here is the first block of a real course-tiny weight:

# %%
model = load_base_model()
w = model.model.layers[0].self_attn.q_proj.weight.detach().float().cpu()
block = w.reshape(-1)[:64]
absmax = block.abs().max()
codes = torch.bucketize(block / absmax, (table[:-1] + table[1:]) / 2)  # nearest NF4 value
print(f"absmax {absmax.item():.4f}")
print("first 8 weights:", [round(v, 4) for v in block[:8].tolist()])
print("their codes:    ", codes[:8].tolist())
print("dequantized:    ", [round(v, 4) for v in (table[codes[:8]] * absmax).tolist()])
lib_codes, lib_absmax = quantize_nf4(w)
print("same codes as course_lib.quant.quantize_nf4:", torch.equal(codes.to(torch.uint8), lib_codes.reshape(-1)[:64]))

# %%
packed, state = bnbF.quantize_4bit(w, blocksize=64, quant_type="nf4")
ours = dequantize_nf4(*quantize_nf4(w))
print(f"whole q_proj: max |ours − bitsandbytes.dequantize_4bit| = {(ours - bnbF.dequantize_4bit(packed, state)).abs().max().item():.1e}")

# %% [markdown]
# ## 2. NF4 against int4 and FP4 on real weights
#
# Same 4 bits, same blocks of 64, three different sets of 16 values: symmetric int4 (k/7), FP4
# E2M1 (bitsandbytes' table), NF4. We quantize every decoder matrix of course-tiny and measure the
# mean squared error relative to the weights' own mean square.

# %%
tables = {"int4": int4_table(), "fp4": fp4_table(), "nf4": nf4_table()}
# the first four decoder layers: all of course-tiny, a bounded sample of a bigger COURSE_MODEL
weights = {n: p.detach().float().cpu() for n, p in model.named_parameters()
           if p.ndim == 2 and any(f".layers.{i}." in n for i in range(4))}
err = {k: 0.0 for k in tables}
power = sum(x.pow(2).sum().item() for x in weights.values())
for x in weights.values():
    for k, t in tables.items():
        err[k] += (dequantize_blockwise(*quantize_blockwise(x, t), t) - x).pow(2).sum().item()
for k, t in tables.items():
    print(f"{k}: relative squared error {err[k] / power:.4f}   values > 0: {[round(v, 3) for v in t[t > 0].tolist()]}")

fig, ax = plt.subplots(figsize=(8, 3))
allw = torch.cat([x.reshape(-1, 64) / x.reshape(-1, 64).abs().amax(1, keepdim=True) for x in weights.values()])
ax.hist(allw.reshape(-1).numpy(), bins=200, density=True, color="lightgrey", label="weights / block absmax")
for (k, t), y in zip(tables.items(), (0.2, 0.5, 0.8)):
    ax.plot(t.numpy(), [y] * len(t), "|", ms=14, mew=2, label=k)
ax.set(title="Decoder weights (scaled by their block's absmax) and the 16 values of each 4-bit code",
       xlabel="scaled weight value", ylabel="density")
ax.legend(fontsize=8); plt.tight_layout(); plt.show()

# %% [markdown]
# NF4 has the lowest error of the three on course-tiny's weights, because it spends its values
# where the weights are: most scaled weights lie near 0, and NF4's positive values are spaced
# closest there. On these weights int4 comes second and FP4 last: bitsandbytes' FP4 (E2M1) has
# nothing between ±0.005 and ±0.167, where many of the weights lie (and it spends a code on
# −0).
#
# The paper compares the codes by model quality rather than weight error (Table 2, Pile-CC
# perplexity after quantization, lower is better): Int4 34.34, FP4 (E2M1) 31.07, FP4 (E3M0)
# 29.48, NF4 + double quantization 27.41. NF4 wins there too, but int4 and FP4 swap places:
# the error of the weights is a useful proxy, not the same thing as the quality of the model.
#
# ## 3. Double quantization: 0.5 → 0.127 bit per parameter
#
# One float32 absmax per 64 weights costs 32/64 = 0.5 bit per parameter on top of the 4. QLoRA
# quantizes those constants too: 8 bits each, in blocks of 256 with one float32 per block, after
# subtracting their mean: 8/64 + 32/(64·256) ≈ 0.127 bit per parameter.

# %%
print(f"NF4:      {bits_per_parameter():.3f} bits per parameter")
print(f"NF4 + DQ: {bits_per_parameter(double_quant=True):.3f} bits per parameter")
saved = (bits_per_parameter() - bits_per_parameter(double_quant=True)) / 8 * 65e9
print(f"saved on a 65B model: {saved / 1e9:.2f} GB")
codes_all, absmax_all = quantize_nf4(torch.cat([x.reshape(-1) for x in weights.values()]))
dq = double_quantize(absmax_all)
rel = ((double_dequantize(dq) - absmax_all).abs() / absmax_all).max().item()
print(f"{absmax_all.numel():,} absmax constants; worst relative error after double quantization {rel:.4f}")

# %% [markdown]
# ## 4. Paged optimizers
#
# Memory use during training is spiky: a long sequence in a batch briefly needs much more
# activation memory. QLoRA's paged optimizers keep the optimizer states in NVIDIA *unified memory*:
# when the GPU runs out, pages move to CPU RAM automatically and come back when the optimizer step
# needs them (QLoRA §3). That turns a rare out-of-memory crash into a short slowdown. It does not
# shrink the states — `paged_adamw_8bit` is still 2 bytes per trainable parameter — so the
# estimator below counts it like 8-bit AdamW. (Paging is a CUDA feature; on the CPU there is
# nothing to page to.)
#
# ## 5. QLoRA on course-tiny, next to 16-bit LoRA
#
# The real recipe: load the model with a `BitsAndBytesConfig` (NF4, double quantization), call
# peft's `prepare_model_for_kbit_training` (it freezes the base model and casts its remaining
# 16-bit parameters — embeddings, norms — to float32 for stable training), add LoRA to all linear
# layers (QLoRA §4), train. The same steps train an ordinary 16-bit LoRA for comparison.
#
# One trap we fell into while writing this lesson, on the CPU only: when a bitsandbytes 4-bit
# layer first runs in evaluation mode without gradients (measuring the perplexity *before*
# training does exactly that), it repacks its weight for a fast CPU inference kernel that has no
# backward pass. Training afterwards only prints a warning ("an autograd kernel was not
# registered") and silently loses the gradient through every frozen 4-bit layer; our QLoRA run
# then learned a fraction of what 16-bit LoRA learned. `course_lib.quant.keep_cpu_4bit_trainable`
# switches that repacking off (on a GPU it changes nothing).

# %%
from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
from transformers import BitsAndBytesConfig

tok = load_tokenizer()
alpaca = load_course_dataset("alpaca")
train_rows = tokenize_causal(tok, [instruction_text(r) for r in alpaca["train"].select(range(400))], max_length=64)
eval_texts = [instruction_text(r) for r in alpaca["validation"].select(range(48))]
half = torch.bfloat16
lora_cfg = LoraConfig(r=16, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM")
steps = TrainConfig(learning_rate=2e-3, max_steps=8, per_device_train_batch_size=4, disable_tqdm=True)


def qlora_model():
    bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                             bnb_4bit_compute_dtype=half)
    m = load_base_model(quantization_config=bnb, **({"device_map": {"": 0}} if device.type == "cuda" else {}))
    m = prepare_model_for_kbit_training(m, use_gradient_checkpointing=False)
    keep_cpu_4bit_trainable(m)  # see above: without it, evaluating first breaks training on a CPU
    return get_peft_model(m, lora_cfg)


def lora16_model():
    return get_peft_model(load_base_model(dtype=half).to(device), lora_cfg)


def bytes_by_dtype(m):
    """Parameter bytes per storage dtype (4-bit weights are stored as uint8, two codes per byte)."""
    out = {}
    for p in m.parameters():
        out[str(p.dtype).removeprefix("torch.")] = out.get(str(p.dtype).removeprefix("torch."), 0) + p.nbytes
    return out


results = {}
for name, build in (("16-bit LoRA", lora16_model), ("QLoRA (NF4)", qlora_model)):
    set_seed(0)
    m = build()
    results[name] = {"footprint": m.get_memory_footprint(), "dtypes": bytes_by_dtype(m),
                     "trainable": count_parameters(m, trainable_only=True), "before": perplexity(m, tok, eval_texts)}
    hist = train(m, train_rows, steps, collate_fn=collator_for(tok, "causal-lm"))
    results[name].update(after=perplexity(m, tok, eval_texts), loss=hist.loss)
    del m
for name, r in results.items():
    print(f"{name:12s} {r['trainable']:,} trainable; validation perplexity {r['before']:.1f} -> {r['after']:.1f}; "
          f"training loss {r['loss'][0]:.2f} -> {r['loss'][-1]:.2f}")
    print(f"{'':12s} model in memory {r['footprint'] / 1e6:.2f} MB: "
          + ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in sorted(r["dtypes"].items())))
for name in ("course-tiny", "llama-2-7b"):
    shape = PRESETS[name]
    print(f"{name}: decoder linear layers (what bitsandbytes quantizes) are "
          f"{100 * shape.linear_parameters / shape.parameters:.0f} % of the parameters")

# %% [markdown]
# Two things to read above (on course-tiny; with `COURSE_MODEL` your numbers differ).
#
# **Quality.** Rounding the frozen weights to NF4 raised the perplexity before training a little
# (166.6 in bf16, 170.9 in NF4). After the same 8 steps both runs reach about the same
# validation perplexity: 27.0 with 16-bit LoRA, 27.2 with QLoRA. One short run with one seed
# proves little by itself, but it agrees with the paper at scale (MMLU 5-shot: BF16 53.0,
# NF4 + DQ 53.1, Table 4).
#
# **Memory.** The QLoRA model is barely smaller here (3.18 MB against 3.41 MB). Its 4-bit linear
# layers take only 0.43 MB (uint8: two codes per byte), but bitsandbytes quantizes only the
# decoder's linear layers, which are 62 % of course-tiny; the rest, mostly the 4096 × 128
# embedding, stays unquantized, and `prepare_model_for_kbit_training` keeps it in float32
# (2.76 MB with the LoRA weights). On Llama-2-7B the linear layers are 96 % of the parameters,
# so there the weights do shrink almost 4× (section 6).
#
# Measured peak memory of one training step, on this machine's device:

# %% tags=["nbval-ignore-output"]
def one_step(build):
    def run():
        set_seed(0)
        m = build()
        batch = collator_for(tok, "causal-lm")(train_rows[:4])
        m(**{k: v.to(device) for k, v in batch.items()}).loss.backward()
    return measure_peak_memory(run, device=device.type)


for name, build in (("16-bit LoRA", lora16_model), ("QLoRA (NF4)", qlora_model)):
    peak = one_step(build)
    print(f"{name:12s} peak {peak.peak_bytes / 1e6:7.1f} MB  [{peak.method}]")

# %% [markdown]
# On a CPU this is the course's *substitute* measurement (the growth of the process's resident
# memory), which also counts Python and allocator overheads; on a CUDA GPU it is
# `torch.cuda.max_memory_allocated()`, the bytes tensors really used.
#
# ## 6. The VRAM exercise, part by part
#
# `course_lib.vram.estimate_memory` (and `course vram` on the command line) sizes each part, in bytes:
#
# | part | what it is | rule |
# |---|---|---|
# | weights | the model, in its working precision | 2 bytes/param in 16-bit, 4 in fp32, ≈0.5 for NF4 layers |
# | gradients | one per *trainable* parameter | same precision as the weights |
# | optimizer states | AdamW's m and v (+ the fp32 master copy in mixed precision) | 8 (+4) bytes; 8-bit AdamW 2 |
# | activations | what the forward pass saves for backward | per token and layer ≈ 20·h + 4·kv + 8·i bytes in 16-bit (Llama, SDPA); + 6·a·s per token with eager attention; 2·h with checkpointing |
# | temporaries | short-lived buffers at the peak | the loss's fp32 logit gradients, the optimizer's scratch copies |
# | quantization constants | absmax per block of 64 | 0.5 bit/param, 0.127 with DQ |
# | LoRA parameters | the adapters | r·(d+k) per matrix |
#
# The parts are never all alive at once. In a training step the **peak** is either the start of the
# backward pass (weights + optimizer states + every saved activation + the loss's gradient buffers) or
# the optimizer step (weights + gradients + optimizer states + scratch); with checkpointing it can be
# a block being recomputed late in the backward pass. `estimate_memory` computes each moment and
# reports the largest, and says which one it was. Sources: mixed-precision Adam is 2 + 2 + 12 = 16
# bytes per parameter (ZeRO, Rajbhandari et al. 2020, §3.1; the HF docs count 18). Korthikanti et al.
# 2022 (arXiv 2205.05198) give s·b·h·(34 + 5·a·s/h) bytes per layer for a GPT with dropout that stores
# the attention scores; a Llama in transformers keeps other tensors (no dropout masks, a SwiGLU MLP,
# fp32 copies inside RMSNorm), so the course counts what *its* layers save, and PyTorch's MemTracker
# checks the count below. With SDPA (PyTorch's `scaled_dot_product_attention`, which dispatches to
# FlashAttention-style kernels; Dao et al. 2022, arXiv 2205.14135) the s × s score matrix is never
# stored, so attention memory grows linearly with the sequence; eager attention stores it.
#
# What a GPU adds on top of tensors is one more line: the CUDA context (a few hundred MB, loaded
# with the first CUDA call), cuBLAS workspaces and the caching allocator's rounding and unused
# reserve (PyTorch docs, "CUDA semantics: memory management"; `torch.cuda.memory_reserved()` shows it).
# The course assumes 1 GiB and prints it separately from the tensor peak.
#
# **Seed question 1:** "the total VRAM required to fine-tune a 7B model in FP16 with gradient
# checkpointing, sequence length 2048, batch size 4". "FP16" training in practice means mixed
# precision (fp16 compute, fp32 master weights and Adam states):

# %%
l7 = PRESETS["llama-2-7b"]
q1 = estimate_memory(l7, VramConfig(method="full", precision="mixed", optimizer="adamw", batch_size=4,
                                    seq_len=2048, gradient_checkpointing=True))
print(q1.table("Llama-2-7B, full fine-tuning, mixed precision AdamW, batch 4 × 2048, checkpointing"))
for attn in ("sdpa", "eager"):
    nockpt = estimate_memory(l7, VramConfig(method="full", precision="mixed", batch_size=4, seq_len=2048,
                                            attn_implementation=attn))
    print(f"without gradient checkpointing, {attn:5s} attention: activations {nockpt.activations / 1e9:5.0f} GB, "
          f"peak {nockpt.peak / 1e9:5.0f} GB at {nockpt.phase}")

# %% [markdown]
# About 113 GB on a GPU: a 112.5 GB tensor peak, reached late in the backward pass (every gradient
# and a recomputed block alive next to the optimizer states), plus the assumed 1 GB of overhead. More
# than one 80 GB card, dominated by the 12 bytes per parameter of optimizer state (80.9 GB) — not the
# 14 GB of a table that counts the weights only. The weights alone are 13.5 GB (6.74 B parameters × 2
# bytes). Without checkpointing the saved activations are 62 GB with SDPA attention and 165 GB with
# eager attention, which keeps the 2048 × 2048 softmax scores of every head and layer.
#
# **Seed question 2:** "fine-tune a 13B model on a single RTX 3080 (10 GB)". Try each method at
# the smallest sensible set-up (batch 1, 512 tokens, checkpointing):

# %%
l13 = PRESETS["llama-2-13b"]
for method, precision, opt in (("full", "mixed", "adamw"), ("lora", "bf16", "adamw"),
                               ("qlora", "bf16", "paged-adamw-8bit")):
    e = estimate_memory(l13, VramConfig(method=method, precision=precision, optimizer=opt, batch_size=1,
                                        seq_len=512, gradient_checkpointing=True))
    print(f"{method:5s} {precision:5s} {opt:16s} total {e.total / 1e9:6.1f} GB  -> "
          f"{'fits' if e.total <= 10e9 else 'does not fit'} in 10 GB")
q2 = estimate_memory(l13, VramConfig(method="qlora", optimizer="paged-adamw-8bit", batch_size=1, seq_len=512,
                                     gradient_checkpointing=True))
print()
print(q2.table("Llama-2-13B QLoRA, batch 1 × 512, checkpointing, paged 8-bit AdamW"))
for b in (1, 2, 4, 8):
    e = estimate_memory(l13, VramConfig(method="qlora", optimizer="paged-adamw-8bit", batch_size=b, seq_len=512,
                                        gradient_checkpointing=True))
    print(f"batch {b}: activations {e.activations / 1e9:5.2f} GB, total {e.total / 1e9:5.2f} GB")

# %% [markdown]
# Only QLoRA fits, and the last lines show the seed's "batch size: low impact on memory" is wrong:
# activations grow linearly with the batch, and on QLoRA they decide whether a batch fits. The
# reported fits agree in size: QLoRA 13/14B ≈ 8.5–12 GB (QLoRA §1, LLaMA-Factory README, Unsloth
# docs).
#
# **The seed's table, corrected.** The seed lists "Full FT (FP16) 7B: 14 GB" — that is the weights
# alone; "LoRA (FP16) 7B: 12 GB" is below the 14 GB floor that the fp16 weights already take.
# With training counted (batch 1 × 512, checkpointing):

# %%
seed_table = {"Full FT (FP32)": (28, 280), "Full FT (FP16)": (14, 140), "LoRA (FP16)": (12, 120),
              "QLoRA (4-bit)": (6, 48)}
setups = {"Full FT (FP32)": VramConfig(method="full", precision="fp32"),
          "Full FT (FP16)": VramConfig(method="full", precision="mixed"),
          "LoRA (FP16)": VramConfig(method="lora", precision="fp16"),
          "QLoRA (4-bit)": VramConfig(method="qlora", optimizer="paged-adamw-8bit")}
print(f"{'method':15s} {'seed 7B':>8s} {'weights':>8s} {'training':>9s} | {'seed 70B':>8s} {'weights':>8s} {'training':>9s}")
est = {}
for name, cfg in setups.items():
    cfg.batch_size, cfg.seq_len, cfg.gradient_checkpointing = 1, 512, True
    e7, e70 = est[name] = estimate_memory(l7, cfg), estimate_memory(PRESETS["llama-2-70b"], cfg)
    s7, s70 = seed_table[name]
    print(f"{name:15s} {s7:7d}G {(e7.weights + e7.quantization_constants) / 1e9:7.1f}G {e7.total / 1e9:8.1f}G | "
          f"{s70:7d}G {(e70.weights + e70.quantization_constants) / 1e9:7.1f}G {e70.total / 1e9:8.1f}G")

weights_of = lambda e: e.weights + e.quantization_constants
print("\nQLoRA's saving, 7B / 70B:")
for label, base, of in (("weights vs 16-bit", "LoRA (FP16)", weights_of),
                        ("weights vs fp32", "Full FT (FP32)", weights_of),
                        ("training vs 16-bit LoRA", "LoRA (FP16)", lambda e: e.total),
                        ("training vs full (mixed)", "Full FT (FP16)", lambda e: e.total)):
    print(f"  {label:25s}" + " / ".join(f"{of(est[base][i]) / of(est['QLoRA (4-bit)'][i]):4.1f}×" for i in (0, 1)))

# %% [markdown]
# The seed's full fine-tuning rows are the weights column; real training needs 16 bytes per
# parameter plus activations. The "up to 8×" the seeds promise for QLoRA needs a baseline, and
# the last lines give it: against 16-bit weights the model shrinks 3.5× (7B) to 3.8× (70B) — not
# quite the 16 / 4.127 ≈ 3.9× of quantizing everything, because the embeddings and LM head stay
# in 16 bits — and 7.0× to 7.6× against fp32. Whole training memory shrinks 2.8× (7B) to 3.6×
# (70B) against 16-bit LoRA, and 20.2× to 28.0× against full fine-tuning (batch 1 × 512 here;
# bigger batches add activations to every method).
#
# ### Memory by method and model size, against real cards

# %%
cards = {"RTX 3080 (10 GB)": 10, "T4 (16 GB)": 16, "RTX 3090/4090 (24 GB)": 24, "A100/H100 (80 GB)": 80}
sizes = ["llama-2-7b", "llama-2-13b", "llama-2-70b"]
methods = {"full (mixed AdamW)": VramConfig(method="full", precision="mixed"),
           "LoRA r=16 (bf16)": VramConfig(method="lora", precision="bf16"),
           "QLoRA r=16 (NF4, paged 8-bit)": VramConfig(method="qlora", optimizer="paged-adamw-8bit")}
fig, ax = plt.subplots(figsize=(9, 4.2))
xs = range(len(sizes))
for i, (label, cfg) in enumerate(methods.items()):
    cfg.batch_size, cfg.seq_len, cfg.gradient_checkpointing = 1, 512, True
    totals = [estimate_memory(PRESETS[s], cfg).total / 1e9 for s in sizes]
    ax.bar([x + (i - 1) * 0.27 for x in xs], totals, width=0.27, label=label)
for name, gb in cards.items():
    ax.axhline(gb, ls="--", lw=1, color="k")
    ax.text(1.01, gb, name, fontsize=7, va="center", transform=ax.get_yaxis_transform())  # right of the axes
ax.set_yscale("log")
ax.set_xticks(list(xs), ["Llama-2-7B", "Llama-2-13B", "Llama-2-70B"])
ax.set(title="Estimated training memory, batch 1 × 512 tokens, gradient checkpointing", xlabel="model",
       ylabel="GB (log scale)")
ax.legend(fontsize=8, loc="upper left"); plt.tight_layout(); plt.show()

# %% [markdown]
# ### Predicted against measured, without a GPU
#
# A measurement does not need a GPU. PyTorch's memory tracker
# (`torch.distributed._tools.mem_tracker.MemTracker`) records every tensor a training step creates and
# frees, by category, and it works under `FakeTensorMode`, where tensors have shapes and dtypes but no
# storage: a 13B model "trains" on a laptop in a minute and allocates nothing.
# `course_lib.memtrack.track_training_step` runs two AdamW steps that way (the second is the steady
# state, with the optimizer states already there). Here it is on course-tiny's shape, live:

# %%
from course_lib.memtrack import track_training_step

tiny = PRESETS["course-tiny"]
for fields in (dict(method="full"), dict(method="lora"), dict(method="lora", attn_implementation="eager"),
               dict(method="full", gradient_checkpointing=True)):
    cfg = VramConfig(precision="bf16", batch_size=16, seq_len=256, **fields)
    tracked, predicted = track_training_step(tiny, cfg), estimate_memory(tiny, cfg)
    print(f"{str(fields):55s} tracked {tracked.peak / 1e6:6.1f} MB  predicted {predicted.peak / 1e6:6.1f} MB "
          f"({predicted.peak / tracked.peak - 1:+.1%}), peak at {predicted.phase}")

# %% [markdown]
# The receipt `benchmarks/results/vram_memtrack.json` (made by `python benchmarks/vram_memtrack.py`)
# does the same for Llama-3.2-1B, Llama-2-7B and Llama-2-13B shapes: full fine-tuning and LoRA, fp32,
# pure bf16 and mixed precision, several batch sizes and sequence lengths, with and without
# checkpointing, SDPA and eager attention.

# %%
receipt = json.loads((data_dir().parent / "benchmarks" / "results" / "vram_memtrack.json").read_text())
runs = receipt["runs"]
fig, ax = plt.subplots(figsize=(6, 4.8))
for method, marker in (("full", "o"), ("lora", "s")):
    pts = [(r["tracked_peak_bytes"] / 1e9, r["predicted_peak_bytes"] / 1e9) for r in runs
           if r["config"]["method"] == method]
    ax.scatter(*zip(*pts), marker=marker, label=method)
top = max(r["tracked_peak_bytes"] for r in runs) / 1e9 * 1.1
ax.plot([0, top], [0, top], "k:", label="predicted = tracked")
ax.fill_between([0, top], [0, 0.9 * top], [0, 1.1 * top], color="grey", alpha=0.15, label="±10 %")
ax.set(title="course vram against MemTracker (fake tensors)", xlabel="tracked tensor peak (GB)",
       ylabel="predicted tensor peak (GB)")
ax.legend(); plt.tight_layout(); plt.show()
for r in runs:
    c = r["config"]
    setup = (f"{c['method']:4s} {c['precision']:5s} {c['batch_size']}×{c['seq_len']:<4d} {c['attn_implementation']:5s}"
             f"{' ckpt' if c['gradient_checkpointing'] else '     '}")
    print(f"{r['model']:13s} {setup}  tracked {r['tracked_peak_bytes'] / 1e9:6.2f} GB  "
          f"predicted {r['predicted_peak_bytes'] / 1e9:6.2f} GB  {r['relative_error']:+.1%}")
print(f"worst error {receipt['worst_relative_error']:.1%} over {len(runs)} configurations")

# %% [markdown]
# What this does and does not check. The tracker counts tensor bytes exactly as PyTorch allocates
# them for these shapes, in the order the real code runs, so it checks the estimator's parts *and*
# its peak model. It does not see what a GPU adds (the separate overhead line above), and 4-bit
# layers cannot run on fake tensors, so QLoRA is not in the receipt: its weights are the NF4
# arithmetic of section 3. A GPU receipt (`python benchmarks/vram_benchmark.py` on a CUDA machine,
# `torch.cuda.max_memory_allocated` and `max_memory_reserved`) is the last step, and the course will
# plot it once one has been committed.
#
# **Check a prediction on your laptop.** `course vram --model llama-2-7b --method lora --batch-size 4
# --seq-len 1024 --check` prints the estimate and then measures the same job with the tracker (about a
# minute for 7B on a 2-core CPU).
#
# **On a machine with a GPU, measure your own.** The cell below trains a few steps of your model on
# your card and compares with the estimate (it skips on a CPU).

# %% tags=["nbval-ignore-output"]
if device.type == "cuda":
    peak = one_step(lora16_model)
    print(f"measured {peak.peak_bytes / 1e9:.3f} GB ({peak.method})")
else:
    print("No CUDA GPU here: skipped. On a GPU this cell measures one LoRA training step of your model.")

# %% [markdown]
# ## Summary
#
# - NF4 = 16 values at normal quantiles, blockwise absmax over 64 weights; ours matches
#   bitsandbytes. On real weights it has lower error than int4 and FP4.
# - Double quantization cuts the constants from 0.5 to ≈0.127 bit per parameter; paged
#   optimizers move optimizer states to CPU RAM on memory spikes instead of crashing.
# - QLoRA on course-tiny (BitsAndBytesConfig + peft) reached about the same perplexity as 16-bit
#   LoRA after 8 steps (27.2 against 27.0). On a CPU, call `keep_cpu_4bit_trainable` first, or
#   an evaluation before training silently breaks the backward pass through the 4-bit layers.
# - Training memory has parts (weights, gradients, optimizer states, activations, constants, adapters)
#   that are not all alive at once: the peak is the start of the backward pass or the optimizer step,
#   and `course vram` says which. Full fine-tuning needs ≈16 bytes/param before activations;
#   activations grow linearly with batch size (and with the sequence squared only if the attention
#   scores are stored); QLoRA brings 13B within a 10 GB card at batch 1.
# - The estimate is checked without a GPU: PyTorch's MemTracker on fake tensors, at 1B–13B shapes
#   (`benchmarks/vram_memtrack.py`), and on your laptop with `course vram --check`.
#
# **Exercises:** [exercises/04_qlora_consumer_gpu.ipynb](../exercises/04_qlora_consumer_gpu.ipynb) — quantize a block to NF4, dequantize it,
# count bits with double quantization, estimate memory for stated set-ups, and choose a batch size that a
# memory measurement confirms.
