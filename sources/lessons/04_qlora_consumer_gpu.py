# %% [markdown]
# # Lesson 04 — QLoRA: fine-tuning on a consumer GPU
#
# **Goal.** Build NF4 by hand and check it against bitsandbytes; compare it with int4 and FP4 on
# real weights; count what double quantization saves; fine-tune course-tiny with QLoRA through
# `BitsAndBytesConfig` + peft, and find out why it saves no memory on a model this small while it does
# on a real one (SmolLM2-135M, measured); learn to predict training memory part by part, so that "will
# it fit on my card?" becomes arithmetic instead of folklore; and trade memory for time with gradient
# accumulation.
#
# **Runtime.** Under 90 s on a 2-core CPU (84 s measured on a busy, shared machine). Everything runs
# on the CPU here (bitsandbytes ≥ 0.45 does NF4 on the CPU) and unchanged on a CUDA GPU with
# `COURSE_MODEL`.
#
# Source: Dettmers et al., *QLoRA*, NeurIPS 2023 (arXiv 2305.14314).

# %%
import transformers

from course_lib.doctor import versions_line
from course_lib.models import set_threads
from course_lib.notebook import below, quiet_notebook

set_threads()  # one CPU thread (COURSE_THREADS): the same numbers on every machine
quiet_notebook()  # no progress bars, known notices or DeepSpeed's CPU warning in the saved outputs
print(versions_line())

# %%
import json

import matplotlib.pyplot as plt
import torch

from course_lib.data import data_dir, instruction_text, load_course_dataset
from course_lib.models import count_parameters, get_device, load_base_model, load_tokenizer, set_seed
from course_lib.metrics import perplexity
from course_lib.memory import (bits_per_parameter, dequantize_blockwise, dequantize_nf4, double_dequantize,
                              double_quantize, fp4_table, int4_table, nf4_table,
                              quantize_blockwise, quantize_nf4)
from course_lib.data import collator_for, tokenize_causal
from course_lib.training import TrainConfig, train
from course_lib.memory import measure_peak_memory
from course_lib.memory import PRESETS, ModelShape, VramConfig, estimate_memory, shape_of

device = get_device()
set_seed(0)

# %% [markdown]
# ## 1. NF4 by hand
#
# Pretrained weights are roughly normally distributed around 0. A 4-bit code has 16 values; NF4
# puts them at *quantiles* of N(0, 1), so each value stands for an equal share of a normal
# distribution (QLoRA §3). bitsandbytes builds 8 positive values from Φ⁻¹ of 9 evenly spaced
# probabilities between 0.9677 and 0.5, 7 negative ones from the other tail, adds an exact 0 (so
# zero and padding stay exact) and divides by the largest. `course_lib.memory.quant.nf4_table` does this
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
print("same codes as course_lib.memory.quant.quantize_nf4:", torch.equal(codes.to(torch.uint8), lib_codes.reshape(-1)[:64]))

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
# then learned a fraction of what 16-bit LoRA learned. `course_lib.memory.quant.keep_cpu_4bit_trainable`
# switches that repacking off (on a GPU it changes nothing).

# %%
from course_lib.experiments.memory import build_model, bytes_by_dtype

tok = load_tokenizer()
alpaca = load_course_dataset("alpaca")
train_rows = tokenize_causal(tok, [instruction_text(r) for r in alpaca["train"].select(range(400))], max_length=64)
eval_texts = [instruction_text(r) for r in alpaca["validation"].select(range(48))]
steps = TrainConfig(learning_rate=2e-3, max_steps=8, per_device_train_batch_size=4, disable_tqdm=True)


# The recipe is `build_model` in course_lib/experiments/memory.py (what `course memory` measures):
# BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
# bnb_4bit_compute_dtype=bfloat16), prepare_model_for_kbit_training, keep_cpu_4bit_trainable, then
# LoraConfig(r=16, target_modules="all-linear") with get_peft_model. Here lora_alpha = r.
def qlora_model(prepare=True):  # prepare=False: frozen but without the float32 cast (measured below)
    return build_model(None, "qlora", lora_r=16, lora_alpha=16, prepare=prepare, device=device)


def lora16_model(autocast_adapter_dtype=True):
    return build_model(None, "lora", lora_r=16, lora_alpha=16, device=device,
                       autocast_adapter_dtype=autocast_adapter_dtype)


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
    # after training, to 2 digits: bf16 matmuls round differently on CPUs with and without AVX512-BF16
    print(f"{name:12s} {r['trainable']:,} trainable; validation perplexity {r['before']:.1f} -> {r['after']:.0f}; "
          f"training loss {r['loss'][0]:.2f} -> {r['loss'][-1]:.2f}")
    print(f"{'':12s} model in memory {r['footprint'] / 1e6:.2f} MB: "
          + ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in sorted(r["dtypes"].items())))
print(f"embedding: {model.config.vocab_size} × {model.config.hidden_size}, "
      f"tied to the LM head: {model.config.tie_word_embeddings}")
for name in ("course-tiny", "llama-2-7b"):
    shape = PRESETS[name]
    print(f"{name}: decoder linear layers (what bitsandbytes quantizes) are "
          f"{100 * shape.linear_parameters / shape.parameters:.0f} % of the parameters")

# %% [markdown]
# Two things to read above (on course-tiny; with `COURSE_MODEL` your numbers differ).
#
# **Quality.** Rounding the frozen weights to NF4 raised the perplexity before training a little
# (166.6 in bf16, 170.9 in NF4). After the same 8 steps both runs reach the same validation
# perplexity to two digits, 27 (printed to two digits: the third moves with the CPU, since bf16
# matrix products round differently with and without the CPU's AVX512-BF16 instructions). One short run with one seed
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
# ### Why QLoRA does not save memory on course-tiny
#
# An earlier version of this lesson measured the opposite of its own point: a *higher* peak for
# QLoRA than for 16-bit LoRA. To see why, count tensor bytes exactly. PyTorch's memory tracker
# (`MemTracker`, the tool section 6 uses on fake tensors) also runs on real tensors, 4-bit layers
# included: `course_lib.memory.memtrack.track_model_steps` takes two AdamW steps of a model under it and
# reports the peak by category — the same bytes on every machine, no allocator noise. Three
# set-ups: 16-bit LoRA, the QLoRA recipe above, and QLoRA without `prepare_model_for_kbit_training`'s
# float32 cast.

# %%
from course_lib.memory import track_model_steps

ids = torch.randint(0, model.config.vocab_size, (4, 64), generator=torch.Generator().manual_seed(0)).to(device)
tracked = {}
for name, build in (("16-bit LoRA", lora16_model), ("QLoRA (NF4)", qlora_model),
                    ("QLoRA, no fp32 cast", lambda: qlora_model(prepare=False)),
                    ("16-bit LoRA, bf16 adapters",
                     lambda: lora16_model(autocast_adapter_dtype=False))):
    set_seed(0)
    tracked[name] = t = track_model_steps(build(), ids)
    parts = ", ".join(f"{k} {v / 1e6:.2f}" for k, v in t.by_category.items() if v >= 1e4)
    print(f"{name:26s} tensor peak {t.peak / 1e6:6.2f} MB  ({parts} MB)")
for adapters in (True, False):
    predicted = estimate_memory(shape_of(model.config), VramConfig(method="lora", batch_size=4, seq_len=64,
                                                                   autocast_adapter_dtype=adapters))
    print(f"course vram, LoRA r=16 all-linear, bf16, batch 4 × 64, autocast_adapter_dtype={adapters!s:5s}: "
          f"tensor peak {predicted.peak / 1e6:6.2f} MB")

# %% [markdown]
# Four things, each visible above (course-tiny; with `COURSE_MODEL` your numbers differ):
#
# - **On course-tiny the weights are a small share of the peak.** The peak comes at the start of the
#   backward pass, where the saved activations and the loss's buffers over the 4096-token vocabulary
#   (the temporaries) dominate: the parameters are 3.41 MB of 16-bit LoRA's 26.97 MB. Even a perfect
#   quantization could not save much.
# - **The QLoRA recipe makes some tensors larger.** Only the decoder's linear layers are quantized,
#   and `prepare_model_for_kbit_training` casts everything else — the embedding (here also the LM
#   head) and the norms — to float32 for stable training. The parameters only shrink from 3.41 to
#   3.18 MB, and since the residual stream now starts as the float32 output of the embedding, the
#   saved activations grow from 13.86 to 15.18 MB: 28.06 MB in all against 26.97 MB.
# - **Quantization itself does save.** Without the float32 cast, QLoRA's tensor peak is 25.69 MB,
#   below 16-bit LoRA's. The cast is a choice for numerical stability, and on a small model it costs
#   more than the 4-bit weights save.
# - **peft keeps LoRA's adapters in float32** (`get_peft_model(..., autocast_adapter_dtype=True)`, its
#   default), and every adapted layer keeps a float32 copy of its input for them. With 16-bit adapters
#   the tensor peak of 16-bit LoRA is 22.35 MB instead of 26.97 MB. `course vram` predicts both: 26.99 MB
#   with peft's default, 22.37 MB with `autocast_adapter_dtype=False`.
#
# Measured the way the earlier version did — the growth of the process's resident memory on a CPU —
# building the model and taking a step are two different peaks:

# %% tags=["nbval-ignore-output"]
def one_step(build):
    """Peak memory of building a model, then of one training step (RSS growth on a CPU, tensor bytes on a GPU)."""
    set_seed(0)
    built = {}
    building = measure_peak_memory(lambda: built.setdefault("model", build()), device=device.type)
    batch = {k: v.to(device) for k, v in collator_for(tok, "causal-lm")(train_rows[:4]).items()}
    step = measure_peak_memory(lambda: built["model"](**batch).loss.backward(), device=device.type)
    return building, step


for name, build in (("16-bit LoRA", lora16_model), ("QLoRA (NF4)", qlora_model)):
    building, step = one_step(build)
    print(f"{name:12s} building {building.peak_bytes / 1e6:7.1f} MB, one step {step.peak_bytes / 1e6:7.1f} MB"
          f"  [{step.method}]")

# %% [markdown]
# The earlier version measured the growth of the process's resident memory (RSS) while building the
# model *and* taking a step, so it mixed loading (each weight is read in 16 or 32 bits before it is
# quantized) with training. RSS also counts what the CPU allocator keeps after a tensor is freed —
# including bitsandbytes' dequantized 16-bit copy of each 4-bit weight, made afresh in every forward
# and backward pass — and it moves from run to run (run the cell twice). It is a fair upper bound
# for a whole process, not a count of what the method needs; the tracker's numbers are.
#
# ### The same comparison on a real model
#
# SmolLM2-135M-Instruct is large enough for the weights to matter. `course memory --model
# smollm2-135m-instruct` trains it with full fine-tuning (bf16, AdamW), 16-bit LoRA and QLoRA (r = 16
# on every linear layer) on the CPU, each method in its own fresh process so that one run's freed
# memory cannot hide the next one's peak, and records the model's footprint, the exact tensor peak
# (MemTracker, as above), the process's resident peak, and what `course vram` predicts for the same
# shape and set-up. Next to it, the live course-tiny numbers from the cell above:

# %%
from course_lib.results import load_results

mem = load_results("memory_smollm2")
cfg = mem["config"]
print(f"memory_smollm2.json: made by `{mem['command']}`; {cfg['max_steps']} steps of "
      f"{cfg['per_device_train_batch_size']} × {cfg['seq_len']} tokens, one CPU thread, one process per method")
print(f"{'SmolLM2-135M (file)':22s} {'footprint':>10s} {'predicted':>10s} | {'tensor peak':>11s} {'predicted':>10s} "
      f"{'error':>7s} | {'RSS peak':>9s} {'loading':>8s}")
from course_lib.experiments.memory import MemoryConfig, vram_config

predicted = {r["method"]: estimate_memory(ModelShape(**mem["shape"]), vram_config(MemoryConfig(**cfg), r["method"]))
             for r in mem["runs"]}  # today's estimator, for the file's shapes
for r in mem["runs"]:
    p = predicted[r["method"]]
    print(f"{r['method']:22s} {r['footprint_bytes'] / 1e6:8.1f}MB {(p.weights + p.quantization_constants + p.lora_parameters) / 1e6:8.1f}MB | "
          f"{r['tracked_peak_bytes'] / 1e6:9.1f}MB {p.peak / 1e6:8.1f}MB {p.peak / r['tracked_peak_bytes'] - 1:+7.1%} | "
          f"{r['train_peak_bytes'] / 1e6:7.0f}MB {r['load_peak_bytes'] / 1e6:6.0f}MB")
for r in mem["runs"]:
    print(f"{r['method']:5s} tensor peak by category: " + ", ".join(
        f"{k} {v / 1e6:.0f}" for k, v in r["tracked_by_category"].items() if v >= 1e6) + " MB")
print(f"{'course-tiny (live)':22s} " + ", ".join(f"{k} {t.peak / 1e6:.2f} MB" for k, t in tracked.items()))

fig, ax = plt.subplots(figsize=(8, 3.6))
labels = [r["method"] for r in mem["runs"]]
for i, (what, key) in enumerate((("footprint", "footprint_bytes"), ("tensor peak (MemTracker)", "tracked_peak_bytes"),
                                 ("RSS peak", "train_peak_bytes"))):
    ax.bar([x + (i - 1.5) * 0.2 for x in range(len(labels))], [r[key] / 1e6 for r in mem["runs"]], width=0.2, label=what)
ax.bar([x + 1.5 * 0.2 for x in range(len(labels))], [predicted[r["method"]].peak / 1e6 for r in mem["runs"]],
       width=0.2, label="course vram: tensor peak", color="white", edgecolor="k", hatch="//")
ax.set_xticks(range(len(labels)), labels)
ax.set(title="SmolLM2-135M on the CPU: measured against predicted", xlabel="method", ylabel="MB")
ax.legend(fontsize=8); plt.tight_layout(); plt.show()

# %% [markdown]
# What the file shows, on a model where the weights matter:
#
# - **The model shrinks as promised.** QLoRA's footprint is 186.0 MB against 288.6 MB for 16-bit LoRA
#   (the adapters in float32 included) and 269.0 MB for full fine-tuning in bf16.
# - **The training peak barely moves.** In tensors, 2071.1 MB for QLoRA against 2079.3 MB for LoRA
#   and 2172.2 MB for full fine-tuning. At 4 × 256 tokens the saved activations (1349 MB for LoRA,
#   1443 MB for QLoRA, whose residual stream is float32 after the cast) and the loss's buffers over
#   the large vocabulary (403 MB) are most of the peak; quantization does not touch them. Full
#   fine-tuning pays for its optimizer states (538 MB), not more.
# - **`course vram` predicts a GPU, and the CPU differs in one place.** For full fine-tuning it predicts
#   2173.3 MB against the 2172.2 MB the tracker counted, for LoRA with peft's fp32 adapters 2107.7 MB
#   against 2079.3 MB (+1.4%). For QLoRA it predicts 2430.7 MB, 17.4% more than the CPU run kept: on a
#   GPU, the fp32 grouped-query attention that `prepare_model_for_kbit_training` leads to keeps its
#   attention scores (section 6 measures it), and the CPU's attention kernel does not.
# - **On the CPU, QLoRA's process peak is the highest**: 3455 MB of resident memory against 2599 MB
#   for LoRA. The extra over the tensor peak (3455 − 2071 ≈ 1384 MB for QLoRA, 2599 − 2079 ≈ 520 MB for
#   LoRA) is memory the process touched and kept, not tensors alive at the peak, which the tracker
#   would have counted. The likely source is bitsandbytes' CPU path: it dequantizes every 4-bit weight
#   into a fresh 16-bit copy in each forward and backward pass, and the freed copies stay with the
#   allocator; we have not separated it further. Loading is not the cause: QLoRA's loading peak
#   (510 MB) is below LoRA's (808 MB), and both are far below the training peaks.
#
# What a CPU measurement does and does not say about a GPU: the footprint and the tracker's tensor
# peak are the tensors these shapes and dtypes allocate on any device, so they carry over; the RSS
# column does not — on a GPU `torch.cuda.max_memory_allocated()` counts live tensors, like the tracker,
# and the CUDA context and the caching allocator's reserve come on top (section 6). Section 6's GPU
# receipt ran these shapes on an H200: tensor peaks of 2.27 GB for full fine-tuning, 2.13 GB for LoRA and
# 2.48 GB for QLoRA with peft's defaults — on a GPU too, QLoRA's peak is the highest on this small model;
# in the lean recipe it is the lowest (1.47 against 1.62 GB for LoRA). And QLoRA's saving is the weights: it shows where
# they dominate the peak — large models, short sequences, small batches — as section 6 computes for 7B
# to 70B.
#
# ## 6. The VRAM exercise, part by part
#
# `course_lib.memory.vram.estimate_memory` (and `course vram` on the command line) sizes each part, in bytes:
#
# | part | what it is | rule |
# |---|---|---|
# | weights | the model, in its working precision | 2 bytes/param in 16-bit, 4 in fp32, ≈0.5 for NF4 layers |
# | gradients | one per *trainable* parameter | same precision as the weights |
# | optimizer states | AdamW's m and v (+ the fp32 master copy in mixed precision) | 8 (+4) bytes; 8-bit AdamW 2 |
# | activations | what the forward pass saves for backward | per token and layer ≈ 20·h + 4·kv + 8·i bytes in 16-bit (Llama, SDPA); + 6·a·s per token with eager attention; 2·h with checkpointing |
# | temporaries | short-lived buffers at the peak | the loss's fp32 logit gradients; the optimizer's scratch: on CUDA torch's AdamW (`foreach`) holds a copy of all second moments |
# | quantization constants | absmax per block of 64 | 0.5 bit/param, 0.127 with DQ (QLoRA §3) |
# | LoRA parameters | the adapters | r·(d+k) per matrix; fp32 by peft's default (`autocast_adapter_dtype`), with an fp32 copy of each adapted layer's input kept for backward |
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
# **Question 1:** "the total VRAM required to fine-tune a 7B model in FP16 with gradient
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
# About 136 GB on a GPU: a 134.77 GB tensor peak, reached at the optimizer step, plus the assumed 1 GB
# of overhead. More than one 80 GB card, dominated by the 12 bytes per parameter of optimizer state
# (80.86 GB) and by torch's multi-tensor AdamW, which holds a float32 copy of every second moment while it
# updates (the 26.95 GB of temporaries; measured on a GPU at the end of this section) — not the 14 GB of
# a table that counts the weights only. The weights alone are 13.5 GB (6.74 B parameters × 2
# bytes). Without checkpointing the saved activations are 62 GB with SDPA attention and 165 GB with
# eager attention, which keeps the 2048 × 2048 softmax scores of every head and layer.
#
# **Question 2:** "fine-tune a 13B model on a single RTX 3080 (10 GB)". Try each method at
# the smallest sensible set-up (batch 1, 512 tokens, checkpointing):

# %%
l13 = PRESETS["llama-2-13b"]
lean = dict(autocast_adapter_dtype=False, prepare_model_for_kbit_training=False)  # everything in 16 bits
for method, precision, opt, recipe in (("full", "mixed", "adamw", {}), ("lora", "bf16", "adamw", {}),
                                       ("qlora", "bf16", "paged-adamw-8bit", {}),
                                       ("qlora", "bf16", "paged-adamw-8bit", lean)):
    e = estimate_memory(l13, VramConfig(method=method, precision=precision, optimizer=opt, batch_size=1,
                                        seq_len=512, gradient_checkpointing=True, **recipe))
    print(f"{method:5s} {precision:5s} {opt:16s} {'lean' if recipe else 'peft defaults':13s} total "
          f"{e.total / 1e9:6.2f} GB  -> {'fits' if e.total <= 10e9 else 'does not fit'} in 10 GB")
q2 = estimate_memory(l13, VramConfig(method="qlora", optimizer="paged-adamw-8bit", batch_size=1, seq_len=512,
                                     gradient_checkpointing=True))
print()
print(q2.table("Llama-2-13B QLoRA, batch 1 × 512, checkpointing, paged 8-bit AdamW"))
for b in (1, 2, 4, 8):
    e = estimate_memory(l13, VramConfig(method="qlora", optimizer="paged-adamw-8bit", batch_size=b, seq_len=512,
                                        gradient_checkpointing=True))
    print(f"batch {b}: activations {e.activations / 1e9:5.2f} GB, total {e.total / 1e9:5.2f} GB")

# %% [markdown]
# With peft's defaults nothing fits — QLoRA misses by a fifth of a gigabyte, the price of its fp32
# adapters, embeddings and norms. Kept in 16 bits (the lean recipe: `autocast_adapter_dtype=False` and
# no fp32 cast), QLoRA fits; only QLoRA does. The last lines show the often-repeated "batch size: low
# impact on memory" is wrong:
# activations grow linearly with the batch, and on QLoRA they decide whether a batch fits. The
# reported fits agree in size: QLoRA 13/14B ≈ 8.5–12 GB (QLoRA §1, LLaMA-Factory README, Unsloth
# docs).
#
# **A memory table, corrected.** A table of the kind often quoted lists "Full FT (FP16) 7B: 14 GB" — that
# is the weights alone; "LoRA (FP16) 7B: 12 GB" is below the 14 GB floor that the fp16 weights already take.
# With training counted (batch 1 × 512, checkpointing):

# %%
quoted_table = {"Full FT (FP32)": (28, 280), "Full FT (FP16)": (14, 140), "LoRA (FP16)": (12, 120),
              "QLoRA (4-bit)": (6, 48)}
setups = {"Full FT (FP32)": VramConfig(method="full", precision="fp32"),
          "Full FT (FP16)": VramConfig(method="full", precision="mixed"),
          "LoRA (FP16)": VramConfig(method="lora", precision="fp16"),
          "QLoRA (4-bit)": VramConfig(method="qlora", optimizer="paged-adamw-8bit")}
print(f"{'method':15s} {'quoted 7B':>8s} {'weights':>8s} {'training':>9s} | {'quoted 70B':>8s} {'weights':>8s} {'training':>9s}")
est = {}
for name, cfg in setups.items():
    cfg.batch_size, cfg.seq_len, cfg.gradient_checkpointing = 1, 512, True
    e7, e70 = est[name] = estimate_memory(l7, cfg), estimate_memory(PRESETS["llama-2-70b"], cfg)
    s7, s70 = quoted_table[name]
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
# The quoted full fine-tuning rows are the weights column; real training needs 16 bytes per
# parameter plus activations. The "up to 8×" often promised for QLoRA needs a baseline, and
# the last lines give it: against 16-bit weights the model shrinks 3.1× (7B) to 3.7× (70B) — not
# the 16 / 4.127 ≈ 3.9× of quantizing everything, because the embeddings and LM head are not
# quantized, and peft's recipe even keeps them in fp32 — and 6.1× to 7.4× against fp32. Whole
# training memory shrinks 2.5× (7B) to 3.4× (70B) against 16-bit LoRA, and 21.5× to 32.6× against
# full fine-tuning (batch 1 × 512 here; bigger batches add activations to every method).
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
# `course_lib.memory.memtrack.track_training_step` runs two AdamW steps that way (the second is the steady
# state, with the optimizer states already there). Here it is on course-tiny's shape, live:

# %%
from course_lib.memory import track_training_step

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
# layers cannot run on fake tensors, so QLoRA is not in this receipt. The GPU receipt is.
#
# ### Predicted against measured, on a GPU
#
# `python benchmarks/vram_benchmark.py` ran on an NVIDIA H200. Each run builds a Llama of a
# published shape with random weights — SmolLM2-135M, Llama-3.2-1B, Llama-2-7B, 13B and 70B — adds peft
# LoRA, or quantizes the decoder's linear layers to bitsandbytes NF4 first, takes three AdamW steps and
# records `torch.cuda.max_memory_allocated()` over the steps: every tensor alive at the worst moment,
# weights included. LoRA and QLoRA ran in two recipes: peft's defaults (`get_peft_model` keeps the adapters
# of a 16-bit model in fp32; `prepare_model_for_kbit_training` casts the embeddings and norms to fp32) and a
# lean one with everything in bf16. `estimate_memory` predicts both (`autocast_adapter_dtype`,
# `prepare_model_for_kbit_training`, both true by default, as in peft).

# %%
gpu = json.loads((data_dir().parent / "benchmarks" / "results" / "vram-nvidia-h200.json").read_text())
fig, ax = plt.subplots(figsize=(6, 4.8))
for method, marker in (("full", "o"), ("lora", "s"), ("qlora", "^")):
    pts = [(r["measured_peak_bytes"] / 1e9, estimate_memory(PRESETS[r["model"]], VramConfig(**r["config"])).peak / 1e9)
           for r in gpu["runs"] if r["config"]["method"] == method]
    ax.scatter(*zip(*pts), marker=marker, label=method)
top = max(r["measured_peak_bytes"] for r in gpu["runs"]) / 1e9 * 1.1
ax.plot([0, top], [0, top], "k:", label="predicted = measured")
ax.set(xscale="log", yscale="log", title=f"course vram against {gpu['device']}", xlabel="measured tensor peak (GB)",
       ylabel="predicted tensor peak (GB)")
ax.legend(); plt.tight_layout(); plt.show()
errors = []
for r in gpu["runs"]:
    c = r["config"]
    e = estimate_memory(PRESETS[r["model"]], VramConfig(**c))
    errors.append(e.peak / r["measured_peak_bytes"] - 1)
    print(f"{r['model']:12s} {c['method']:5s} {c['precision']:5s} {r['recipe']:13s} {c['batch_size']}×{c['seq_len']:<4d}"
          f"{' ckpt' if c['gradient_checkpointing'] else '     '} {c['attn_implementation']:5s}"
          f"{'' if c['foreach'] else ' one-tensor AdamW'}: measured {r['measured_peak_bytes'] / 1e9:6.2f} GB, "
          f"predicted {e.peak / 1e9:6.2f} GB ({errors[-1]:+.1%}); on the card {r['device_peak_bytes'] / 1e9:6.2f} GB")
print(f"{len(errors)} runs, tensor peak errors from {min(errors):+.1%} to {max(errors):+.1%}; "
      f"CUDA context and libraries {min(r['context_bytes'] for r in gpu['runs']) / 1e9:.2f}–"
      f"{max(r['context_bytes'] for r in gpu['runs']) / 1e9:.2f} GB")

# %% [markdown]
# Three things the GPU taught the estimator, each now part of it:
#
# - **torch's AdamW on CUDA updates all tensors at once** (`foreach`, its default there; on a CPU it goes
#   one tensor at a time). It takes the square root of every second moment in one call, so the optimizer
#   step holds one more copy of them all. Full fine-tuning of Llama-2-7B peaked at the optimizer step
#   with 67.38 GB, against 54.43 GB for the same job with `foreach=False`: 13 GB, one bf16 copy of 6.74 B
#   parameters. MemTracker on a CPU had agreed with the old estimate because it, too, ran one tensor at a
#   time.
# - **peft's defaults cost memory.** fp32 adapters cast each adapted layer's input to fp32 and keep it
#   for the backward pass: Llama-2-7B LoRA at 1 × 512 tokens measured 18.67 GB with peft's defaults and
#   16.71 GB lean. `prepare_model_for_kbit_training` makes the embeddings and norms fp32, and the
#   residual stream between blocks becomes fp32 with them: QLoRA 10.12 against 7.11 GB. Pass
#   `autocast_adapter_dtype=False` to `get_peft_model` (and cast the norms back) if memory is tight.
# - **fp32 grouped-query attention keeps its scores.** After `prepare_model_for_kbit_training`, models
#   with fewer key/value heads than query heads (SmolLM2, Llama-3.2) kept 4 bytes per attention
#   score in the GPU run; PyTorch's flash kernel needs 16-bit inputs. The estimate counts them for that case.
#
# What the card shows is more than the tensor peak: the CUDA context and libraries (the range printed
# above) and the caching allocator's reserve, which held up to 2.45 GB more than the live tensors in
# the checkpointed QLoRA runs. `course vram` assumes 1 GiB for both together, which is too little for
# those runs. The allocator setting `PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True` (PyTorch docs, "CUDA
# semantics") shrinks that reserve:

# %%
expandable = json.loads((data_dir().parent / "benchmarks" / "results" / "vram-nvidia-h200-expandable.json").read_text())
default_by_index = {r["index"]: r for r in gpu["runs"]}
for r in expandable["runs"]:
    before = default_by_index[r["index"]]
    print(f"{r['model']:12s} {r['config']['method']:5s} {r['recipe']:13s} {r['config']['batch_size']}×"
          f"{r['config']['seq_len']:<4d}: reserve above the live tensors {(before['reserved_peak_bytes'] - before['measured_peak_bytes']) / 1e9:4.2f} GB"
          f" -> {(r['reserved_peak_bytes'] - r['measured_peak_bytes']) / 1e9:4.2f} GB with expandable segments")

# %% [markdown]
# And the question this lesson set out to answer: on one card, QLoRA trained Llama-2-70B at 1 × 512
# tokens with checkpointing in the tensor peak printed above for that run (42.29 GB with peft's
# defaults) — the QLoRA paper's 65B model fine-tuned in under 48 GB on one GPU (Dettmers et al. 2023, §1),
# measured. It is
# not free in time: the same card trained Llama-2-7B at 1 × 512 tokens at the rates below.

# %%
for r in gpu["runs"]:
    c = r["config"]
    if r["model"] == "llama-2-7b" and (c["batch_size"], c["seq_len"], c["gradient_checkpointing"]) == (1, 512, False) \
            and c["optimizer"] == "adamw" and c["foreach"]:
        print(f"{c['method']:5s} {r['recipe']:13s} {r['tokens_per_second']:7.0f} tokens/s  ({r['measured_peak_bytes'] / 1e9:5.2f} GB)")

# %% [markdown]
# QLoRA trained about a third slower than 16-bit LoRA (2093 against 3191 tokens/s, lean recipes): every
# forward and backward pass dequantizes each 4-bit weight before its matrix product. These are single
# steps of one short sequence, so read the rates as rough; the memory figures are exact.
#
# **Check a prediction on your laptop.** `course vram --model llama-2-7b --method lora --batch-size 4
# --seq-len 1024 --check` prints the estimate and then measures the same job with the tracker (about a
# minute for 7B on a 2-core CPU).
#
# **On a machine with a GPU, measure your own.** The cell below trains a few steps of your model on
# your card and compares with the estimate (it skips on a CPU).

# %% tags=["nbval-ignore-output"]
if device.type == "cuda":
    building, step = one_step(lora16_model)
    print(f"measured {step.peak_bytes / 1e9:.3f} GB for one step ({step.method})")
else:
    print("No CUDA GPU here: skipped. On a GPU this cell measures one LoRA training step of your model.")

# %% [markdown]
# ## 7. Gradient accumulation: the batch without its memory
#
# Activations grow with the batch (section 6), so a batch that does not fit can be split: run k
# micro-batches forward and backward one after the other, let their gradients add up in `.grad`, and
# take one optimizer step. Memory is that of one micro-batch; the update is that of the whole batch —
# if the loss is normalised right. A causal LM's loss is a mean over label tokens, and micro-batches
# of padded text hold different numbers of them: averaging the k micro-batch means weighs the tokens
# of short micro-batches more. transformers' Trainer (`gradient_accumulation_steps`) therefore counts
# the label tokens of all k micro-batches first and passes that count to the model as
# `num_items_in_batch`, which then divides its summed token loss by it (Hugging Face blog, "Fixing
# Gradient Accumulation", 2024; see docs/references.md). `course_lib.training.loop.accumulate_gradients`
# does the same by hand. One batch of 16 rows against 4 micro-batches of 4, on the same 16 rows:

# %%
from course_lib.training import accumulate_gradients

n_rows = 16 if count_parameters(model) < 10e6 else 8  # a bigger COURSE_MODEL: 4 micro-batches of 2, to stay quick
rows16 = train_rows[:n_rows]
collate = collator_for(tok, "causal-lm")
micro = [collate(rows16[i:i + n_rows // 4]) for i in range(0, n_rows, n_rows // 4)]
print("label tokens per micro-batch:", [int(b["labels"][:, 1:].ne(-100).sum()) for b in micro])


def gradients(batches, normalisation="tokens"):
    """The gradient of one update of a fresh base model over `batches` (float32 weights)."""
    set_seed(0)
    m = load_base_model().to(device)
    accumulate_gradients(m, batches, normalisation)
    return [p.grad for p in m.parameters()]


whole = gradients([collate(rows16)])
for label, grads in (("4 × 4, loss / all label tokens", gradients(micro)),
                     ("4 × 4, mean loss / 4", gradients(micro, "mean"))):
    diff = max((g - w).abs().max().item() for g, w in zip(grads, whole))
    scale = max(w.abs().max().item() for w in whole)
    print(f"{label:32s} max |Δ gradient| against one batch of 16: {below(diff, 1e-6)} (largest gradient {scale:.1e})")

# %% [markdown]
# The same with the Trainer itself: one step of plain SGD (so the update is −lr × the gradient, and
# Adam's normalisation cannot hide a difference), batch 16 against `per_device_train_batch_size=4`
# with `gradient_accumulation_steps=4`. Then the price: the time of one update each way (the best of
# three, by hand), and the memory that `course vram` predicts for a batch of 16 and of 4 on Llama-2-7B.

# %% tags=["nbval-ignore-output"]
import tempfile
import time

from transformers import Trainer
from transformers.trainer_callback import PrinterCallback


def trainer_update(batch_size, accumulation):
    """θ after − θ before for one Trainer step (plain SGD) over rows16."""
    set_seed(0)
    m = load_base_model().to(device)
    before = [p.detach().clone() for p in m.parameters()]
    with tempfile.TemporaryDirectory() as out:
        args = TrainConfig(learning_rate=0.1, max_steps=1, per_device_train_batch_size=batch_size, max_grad_norm=0.0,
                           disable_tqdm=True).to_training_arguments(out, gradient_accumulation_steps=accumulation,
                                                                     optim="sgd", logging_strategy="no",
                                                                     dataloader_pin_memory=False)
        trainer = Trainer(model=m, args=args, train_dataset=rows16, data_collator=collate)
        trainer.remove_callback(PrinterCallback)  # no metrics dict printed at the end
        trainer.train()
    return [p.detach() - b for p, b in zip(m.parameters(), before)]


update16, update4x4 = trainer_update(n_rows, 1), trainer_update(n_rows // 4, 4)
print(f"Trainer, max |Δθ| between batch 16 and 4 × 4 accumulated: "
      f"{below(max((a - b).abs().max().item() for a, b in zip(update16, update4x4)), 1e-6)} "
      f"(largest update {max(u.abs().max().item() for u in update16):.1e})")


def seconds_per_update(batches):
    m = load_base_model().to(device)
    best = float("inf")
    for _ in range(3 if n_rows == 16 else 1):
        m.zero_grad(set_to_none=True)
        start = time.perf_counter()
        accumulate_gradients(m, batches)
        best = min(best, time.perf_counter() - start)
    return best


t16, t4x4 = seconds_per_update([collate(rows16)]), seconds_per_update(micro)
print(f"forward + backward of one update: batch 16 {t16 * 1e3:.0f} ms, 4 × 4 accumulated {t4x4 * 1e3:.0f} ms "
      f"({t4x4 / t16:.1f}×)")
for b in (16, 4):
    e = estimate_memory(l7, VramConfig(method="lora", batch_size=b, seq_len=512, gradient_checkpointing=True))
    print(f"Llama-2-7B LoRA, batch {b:2d} × 512, checkpointing: activations {e.activations / 1e9:5.2f} GB, "
          f"peak {e.peak / 1e9:5.2f} GB")

# %% [markdown]
# With the loss divided by the label tokens of all 16 rows, accumulation gives the whole batch's
# gradient to float precision: the largest difference is below 1e-06 on gradients up to 8.7e-01, the
# rounding of adding in another order (its exact size depends on the CPU's kernels). Through the Trainer
# the two SGD updates agree to below 1e-06 as well.
# Averaging the micro-batches' mean losses is off by 1.0e-03 — small here only because these
# micro-batches hold nearly the same number of label tokens (245 to 252); with texts of very different
# lengths the error grows with the imbalance.
#
# The price is time, not memory: the micro-batches run one after the other, each too small to keep
# the hardware as busy as one large batch would (Hugging Face docs, "Efficient training on a single
# GPU"; see docs/references.md). The cell prints both times on this machine; they vary with its load.
# What it buys: for Llama-2-7B with LoRA, a batch of 16 × 512 tokens keeps 3.20 GB of activations and
# peaks at 19.25 GB of tensors; 4 micro-batches of 4 keep 0.80 GB and peak at 15.30 GB, for the same
# update.

# %% [markdown]
# ## Summary
#
# - NF4 = 16 values at normal quantiles, blockwise absmax over 64 weights; ours matches
#   bitsandbytes. On real weights it has lower error than int4 and FP4.
# - Double quantization cuts the constants from 0.5 to ≈0.127 bit per parameter; paged
#   optimizers move optimizer states to CPU RAM on memory spikes instead of crashing.
# - QLoRA on course-tiny (BitsAndBytesConfig + peft) reached about the same perplexity as 16-bit
#   LoRA after 8 steps (27 both, to two digits). On a CPU, call `keep_cpu_4bit_trainable` first, or
#   an evaluation before training silently breaks the backward pass through the 4-bit layers.
# - QLoRA saves the weights' memory, and only that. On course-tiny its tensor peak is higher than
#   16-bit LoRA's (28.06 against 26.97 MB): the weights are a small share of it, and the recipe's
#   float32 embedding and norms cost more than the 4-bit layers save. On SmolLM2-135M the model
#   shrinks (186.0 against 288.6 MB) but activations dominate the peak (2071.1 against 2079.3 MB of
#   tensors); on a CPU, the process's resident peak is even higher for QLoRA. Count tensors with
#   MemTracker (`track_model_steps`), not the process's memory.
# - Training memory has parts (weights, gradients, optimizer states, activations, constants, adapters)
#   that are not all alive at once: the peak is the start of the backward pass or the optimizer step,
#   and `course vram` says which. Full fine-tuning needs ≈16 bytes/param before activations;
#   activations grow linearly with batch size (and with the sequence squared only if the attention
#   scores are stored); QLoRA brings 13B to about 9–10 GB at batch 1 (Question 2: the
#   lean recipe, everything in 16 bits, below 10 GB; peft's defaults a little above 10 GB, which is still
#   under 10 GiB, the unit a "10 GB" card is sold in). Both include an assumed overhead that section 6
#   shows is too small on a real GPU: a tight fit either way, with more margin lean. Measure before you buy.
# - The estimate is checked without a GPU — PyTorch's MemTracker on fake tensors, at 1B–13B shapes
#   (`benchmarks/vram_memtrack.py`), and on your laptop with `course vram --check` — and on one: 37 runs on
#   an H200, SmolLM2-135M to Llama-2-70B, full fine-tuning, LoRA and QLoRA, measured tensor peaks between
#   −4.3 % and +3.7 % of the estimate (`benchmarks/vram_benchmark.py`). The card needs the context and
#   the allocator's reserve on top; peft's defaults (fp32 adapters, fp32 norms and embeddings for QLoRA) and
#   torch's multi-tensor AdamW cost gigabytes that a weights-only table never shows.
# - Gradient accumulation with the loss normalised by all micro-batches' label tokens
#   (`num_items_in_batch`) gives the whole batch's update (max |Δθ| below 1e-06 through the Trainer):
#   the memory of one micro-batch, paid for in time.
#
# **Exercises:** [exercises/04_qlora_consumer_gpu.ipynb](../exercises/04_qlora_consumer_gpu.ipynb) — quantize a block to NF4, dequantize it,
# count bits with double quantization, estimate memory for stated set-ups, and choose a batch size that a
# memory measurement confirms. The full run behind section 5's real-model table: `course memory --model
# smollm2-135m-instruct` (several minutes).
