# %% [markdown]
# # Lesson 08 — Beyond one GPU: data parallel, sharding, ZeRO
#
# **Goal.** Run one training script unchanged as one process and as two (`accelerate launch`, DDP over
# gloo on this CPU) and check that the two runs learn the same thing; measure what each process holds,
# with and without sharding (FSDP2); then predict the memory per GPU of each ZeRO stage for 7B and 70B
# models, check it against DeepSpeed's own estimators, and turn the numbers into a decision table:
# plain data parallel, ZeRO/FSDP stages, QLoRA on one card, or CPU offload.
#
# **Runtime.** About a minute on a 2-core CPU: three short runs of course-tiny (six steps each) in
# two launches of subprocesses, and arithmetic.
#
# Sources: Rajbhandari et al., *ZeRO: Memory Optimizations Toward Training Trillion Parameter Models*, SC 2020
# (arXiv 1910.02054); Li et al., *PyTorch Distributed: Experiences on Accelerating Data Parallel Training*,
# VLDB 2020 (arXiv 2006.15704); Zhao et al., *PyTorch FSDP*, VLDB 2023 (arXiv 2304.11277).

# %%
from course_lib.doctor import versions_line
from course_lib.models import set_threads
from course_lib.notebook import below, quiet_notebook

set_threads()  # one CPU thread (COURSE_THREADS): the same numbers on every machine
quiet_notebook()  # no progress bars, known notices or DeepSpeed's CPU warning in the saved outputs
print(versions_line())

# %%
import contextlib
import io
from dataclasses import replace

from course_lib.training import DistributedConfig, compare_runs, launch
from course_lib.memory import PRESETS, VramConfig, activation_bytes, estimate_memory
from course_lib.memory import (cards_needed, deepspeed_estimate, largest_layer_parameters, model_states_per_gpu,
                             zero_paper_bytes_per_gpu)

# %% [markdown]
# ## 1. One script, one process or two
#
# **Data parallel** training runs one copy of the model per process (per GPU). Each optimizer step takes a
# *global batch*; every process computes the loss and gradients on its own share, then an **all-reduce**
# averages the gradients over the processes, so every copy applies the same update and stays identical.
# PyTorch's `DistributedDataParallel` (DDP) does the all-reduce during the backward pass, bucket by bucket
# (Li et al. 2020).
#
# `course_lib/training/distributed.py` is one script for both cases. It creates an `accelerate.Accelerator`, which
# finds how many processes `accelerate launch` started and wraps the model in DDP when there are several;
# the rest of the script does not change. Every step takes the same 8 sequences of 64 tokens: one process
# takes all 8, each of two processes takes 4. `launch` runs it in a subprocess (the command is in its
# docstring) and reads back the small JSON that rank 0 writes. Starting a process (importing torch and
# transformers) takes longer than six steps of course-tiny, so the two-process launch also runs section 2's
# sharded version afterwards, in the same processes (`then_fsdp=True`): one launch instead of two.

# %%
config = DistributedConfig(max_steps=6, global_batch_size=8, seq_len=64, learning_rate=1e-3, seed=0)
one = launch(config, num_processes=1)
two, sharded = launch(replace(config, then_fsdp=True), num_processes=2)  # DDP, then FSDP2 (section 2)
print(two["log"].splitlines()[0])
print(f"{'step':>4s} {'loss, 1 process':>16s} {'loss, 2 processes':>18s}")
for step, (a, b) in enumerate(zip(one["losses"], two["losses"]), start=1):
    print(f"{step:4d} {a:16.6f} {b:18.6f}")
diff = compare_runs(one, two)
# below(): how large a rounding difference grows depends on the CPU's kernels; we print the bound it is under
print(f"max |Δ loss| over 6 steps: {below(diff['max_abs_loss_diff'], 1e-5)}")
print(f"max |Δ weight| after 6 steps: {below(diff['max_abs_weight_diff'], 1e-4)}")
print(f"largest move AdamW can make in 6 steps: lr × steps = {config.learning_rate * config.max_steps:.0e}")

# %% [markdown]
# The two runs agree to float precision, but not bit for bit. With two processes the mean gradient is the
# average of two half-batch means, summed in another order than the one-process mean: the last digits of
# float32 differ. AdamW divides each update by √v, so where a gradient entry is close to zero a tiny
# absolute difference in it becomes a large relative one, and a visible difference in the update. Where
# the largest weight difference lands depends on which entries happen to have near-zero gradients, and
# on the CPU: its size and its tensor (`compare_runs(...)["worst_tensor"]`) change between an AVX2 and an
# AVX-512 machine, which is why the cell prints the bound it stays under. It is still far below the size
# of a single update. Two conditions
# make the runs comparable at all: the *global* batch is the same (8 sequences, split 4 + 4), and every
# sequence has the same number of tokens, so the average of the processes' mean losses is the mean over
# the whole batch. With padding and uneven token counts per process, DDP's average of means is not the
# one-process mean, and the runs would drift apart for a real reason.
#
# ### What each process holds
#
# Each process counts the bytes of its own parameters, gradients and AdamW states after the last
# optimizer step (before the gradients are cleared), as tensor sizes, not as the process's RSS.

# %%
def memory_rows(run: dict, name: str) -> None:
    for rank, m in enumerate(run["memory"]):
        total = m["parameters"] + m["gradients"] + m["optimizer_states"]
        print(f"{name:20s} rank {rank}  {m['parameters'] / 1e6:10.2f} {m['gradients'] / 1e6:10.2f} "
              f"{m['optimizer_states'] / 1e6:12.2f} {total / 1e6:9.2f}")


print(f"course-tiny: {one['memory'][0]['parameters'] // 4:,} parameters in float32")
print(f"{'run':20s} {'':6s} {'params MB':>10s} {'grads MB':>10s} {'optimizer MB':>12s} {'total MB':>9s}")
memory_rows(one, "1 process")
memory_rows(two, "2 processes, DDP")

# %% [markdown]
# DDP replicates: every process holds the whole model, all its gradients and all of AdamW's states
# (4 + 4 + 8 bytes per parameter in float32; the few extra bytes are AdamW's step counters). Two GPUs
# with DDP train on twice the data per second at best, but they do not fit a bigger model.
#
# **The cost: the all-reduce.** The script times every all-reduce call (a DDP communication hook that
# blocks while it averages each bucket) against the whole step. Blocking removes what DDP normally does,
# overlapping each bucket's all-reduce with the rest of the backward pass (Li et al. 2020), so the share
# below is an **upper bound** on what communication costs this run. It also depends on this machine and on
# what else runs on it, so the numbers change from run to run:

# %% tags=["nbval-ignore-output"]
steps = slice(1, None)  # step 1 includes one-off set-up; skip it
comm, total = sum(two["allreduce_seconds"][steps]), sum(two["step_seconds"][steps])
timed = len(two["step_seconds"][steps])
grad_bytes = two["memory"][0]["gradients"]
print(f"all-reduce: {comm:.3f} s of {total:.3f} s of steps 2-{timed + 1} = {comm / total:.0%} of the step time")
print(f"gradients averaged per step: {grad_bytes / 1e6:.1f} MB -> {grad_bytes * timed / comm / 1e9:.2f} GB/s "
      f"through gloo on this machine")

# %% [markdown]
# ## 2. Sharding: FSDP2
#
# To fit a bigger model, each process must hold *less*. Fully Sharded Data Parallel (FSDP; in PyTorch 2
# the `fully_shard` API, "FSDP2") cuts every parameter, its gradient and its optimizer states into one
# shard per process. Before a layer computes, the processes all-gather its full weights, and free them
# afterwards; during the backward pass, as soon as a unit's (here: a decoder layer's) gradients are
# computed, a reduce-scatter leaves each process with the averaged gradient of its own shard only, while
# the backward pass goes on through the earlier layers (Zhao et al. 2023). That is ZeRO stage 3.
#
# On a GPU, accelerate applies it for you (`FullyShardedDataParallelPlugin(fsdp_version=2)`). On the CPU,
# accelerate 1.15 keeps plain DDP even when given that plugin: it switches to FSDP only for GPU backends
# (see `accelerate/state.py`). PyTorch's `fully_shard` itself runs on the CPU over gloo, so `--fsdp` makes
# the script call it the way accelerate would: one shard group per decoder layer, then the whole model.
# Section 1's two-process launch ran it after the DDP run (`then_fsdp`), from the same seed and with the same
# settings, as `launch(replace(config, fsdp=True), num_processes=2)` would on its own:

# %%
print(sharded["log"].splitlines()[0])
diff_fsdp = compare_runs(one, sharded)
print(f"against 1 process: max |Δ loss| {below(diff_fsdp['max_abs_loss_diff'], 1e-5)}, "
      f"max |Δ weight| {below(diff_fsdp['max_abs_weight_diff'], 1e-4)}")
print(f"{'run':20s} {'':6s} {'params MB':>10s} {'grads MB':>10s} {'optimizer MB':>12s} {'total MB':>9s}")
memory_rows(one, "1 process")
memory_rows(two, "2 processes, DDP")
memory_rows(sharded, "2 processes, FSDP2")
ratio = sum(sharded["memory"][0].values()) / sum(one["memory"][0].values())
print(f"each FSDP process holds {ratio:.3f} of the unsharded model states")

# %% [markdown]
# Sharded over two processes, each holds half of the parameters, half of the gradients and half of
# AdamW's states, counted as the local part of each sharded tensor (`DTensor.to_local()`), and the run still
# learns what the one-process run learns. What this count leaves out is transient: while a layer computes,
# its full weights (and in the backward pass its full gradient) exist on every process for a moment.
# DeepSpeed's estimator below counts that as "the largest layer, gathered".
#
# ## 3. ZeRO stages: memory per GPU, predicted
#
# ZeRO (Rajbhandari et al. 2020) names three stages beyond DDP (stage 0), the third of which is full
# sharding. With mixed-precision
# Adam, each parameter costs 2 bytes of 16-bit weights, 2 bytes of 16-bit gradients, and the optimizer's
# fp32 copy of the weights plus Adam's two moments (the paper's K = 12 bytes). **Stage 1** shards the
# optimizer states over the N GPUs, **stage 2** also the gradients, **stage 3** also the weights (= FSDP's
# FULL_SHARD; FSDP's SHARD_GRAD_OP is stage 2). DeepSpeed's engine keeps an fp32 copy of the gradients
# too, so its estimators count 16 optimizer bytes instead of 12, and add the largest layer, gathered
# whole, at stage 3 (`deepspeed/runtime/zero/stage_1_and_2.py` and `stage3.py`).
# `course_lib.memory.zero.model_states_per_gpu` counts the same way. Here is
# `course vram --model llama-2-7b --num-gpus 8 --zero-stage 3` (full fine-tuning, 1 × 512 tokens per GPU):

# %%
from course_lib.cli import main as course

_ = course(["vram", "--model", "llama-2-7b", "--num-gpus", "8", "--zero-stage", "3", "--method", "full",
        "--precision", "mixed", "--gradient-checkpointing"])

# %% [markdown]
# And the check against DeepSpeed's own functions (the ones `estimate_zero2_model_states_mem_needs_all_cold`
# and `estimate_zero3_model_states_mem_needs_all_cold` print from), for Llama-2-7B and Llama-2-70B on 2 to
# 8 GPUs:

# %%
rows = []  # computed first, printed after: DeepSpeed's first import takes a few seconds
for name in ("llama-2-7b", "llama-2-70b"):
    for stage in (2, 3):
        for gpus in (2, 4, 8):
            ours = model_states_per_gpu(PRESETS[name], stage, gpus).total
            rows.append((name, stage, gpus, ours, deepspeed_estimate(PRESETS[name], stage, gpus)[1]))
print(f"{'model':12s} {'stage':>5s} {'GPUs':>4s} {'course vram GB':>15s} {'DeepSpeed GB':>13s} {'error':>7s}")
for name, stage, gpus, ours, theirs in rows:
    print(f"{name:12s} {stage:5d} {gpus:4d} {ours / 1e9:15.2f} {theirs / 1e9:13.2f} {ours / theirs - 1:7.1%}")
worst = max(abs(ours / theirs - 1) for *_, ours, theirs in rows)
print(f"largest error: {worst:.1%}")

# %% [markdown]
# They agree exactly because both count the same tensors. DeepSpeed prints the same figure in GiB (its
# "GB" is 2³⁰ bytes); here is its own table for 7B on 8 GPUs, the `offload_optimizer=none` rows are the
# ones above (its first two rows offload the parameters and optimizer states to CPU RAM):

# %%
from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs_all_cold

L7 = PRESETS["llama-2-7b"]
printed = io.StringIO()
with contextlib.redirect_stdout(printed):
    estimate_zero3_model_states_mem_needs_all_cold(L7.parameters, largest_layer_parameters(L7), num_gpus_per_node=8)
print(printed.getvalue().replace("OffloadDeviceEnum.cpu", "cpu"))
print(f"course vram, stage 3 on 8 GPUs: {model_states_per_gpu(L7, 3, 8).total / 2**30:.2f} GiB")

# %% [markdown]
# The ZeRO paper counts leaner, without the fp32 gradients and the gathered layer; `zero_paper_bytes_per_gpu`
# reproduces its Figure 1 (7.5B parameters on 64 GPUs), and then compares both counts for Llama-2-7B on 8 GPUs:

# %%
print("paper, 7.5B on 64 GPUs:", ", ".join(f"stage {s} {zero_paper_bytes_per_gpu(7.5e9, s, 64) / 1e9:.1f} GB"
                                           for s in range(4)))
for stage in range(4):
    paper, ds = zero_paper_bytes_per_gpu(L7.parameters, stage, 8), model_states_per_gpu(L7, stage, 8).total
    print(f"Llama-2-7B, 8 GPUs, stage {stage}: paper {paper / 1e9:6.1f} GB, DeepSpeed {ds / 1e9:6.1f} GB "
          f"({ds / paper - 1:+.0%})")

# %% [markdown]
# ### How many 24 GB cards to fully fine-tune a 7B model?
#
# Model states are not all of it: each GPU also keeps the activations of its own micro-batch (ZeRO does not
# shard those) and the CUDA context (lesson 04). Below: full fine-tuning of Llama-2-7B in mixed precision
# with AdamW, a micro-batch of 1 × 512 tokens per GPU with gradient checkpointing, on cards with 24 GiB,
# and for comparison QLoRA on one card and ZeRO-3 with everything offloaded to CPU RAM.

# %%
card = 24 * 2**30
full = VramConfig(method="full", precision="mixed", batch_size=1, seq_len=512, gradient_checkpointing=True)
per_gpu_extra = activation_bytes(L7, full).saved + full.overhead_bytes
print(f"activations + overhead per GPU: {per_gpu_extra / 1e9:.2f} GB")
for stage in range(4):
    n = cards_needed(L7, stage, card, full)
    weights_and_grads = 4 * L7.parameters  # 16-bit weights and gradients, whole on every GPU in stages 0 and 1
    where = f"never: 16-bit weights and gradients alone are {weights_and_grads / 1e9:.0f} GB" if n is None else f"{n} cards"
    states = model_states_per_gpu(L7, stage, n or 8).total
    print(f"ZeRO stage {stage}: {where:52s} (model states per GPU on {n or 8}: {states / 1e9:6.1f} GB)")
qlora = estimate_memory(L7, VramConfig(method="qlora", precision="bf16", batch_size=1, seq_len=512))
print(f"QLoRA (r=16, all linear layers), one card: {qlora.total / 1e9:.1f} GB -> fits one 24 GB card")
cpu, gpu = deepspeed_estimate(L7, 3, 1, cpu_offload=True)
print(f"ZeRO-3, parameters and optimizer offloaded, one card: {gpu / 1e9:.2f} GB of model states on the GPU, "
      f"{cpu / 1e9:.0f} GB of CPU RAM (DeepSpeed's estimate, with its 1.5× buffer)")

# %% [markdown]
# Stages 0 and 1 never fit a 7B model on 24 GB cards, however many there are: every card keeps the full
# 16-bit weights and gradients. Stage 2 needs a dozen cards, stage 3 half as many. QLoRA does it on one
# card (by training adapters, not the full model), and full offload does it on one card with a large
# amount of CPU RAM and a much slower step (every step moves the weights over PCIe).
#
# ## 4. When to use which
#
# | situation | use | why, in this lesson's numbers |
# |---|---|---|
# | the whole training job fits on one GPU | one GPU; DDP on several only for speed | DDP holds everything on every GPU (§1: same bytes per process) |
# | full fine-tuning does not fit one GPU, fast interconnect | ZeRO-2 / FSDP SHARD_GRAD_OP, then ZeRO-3 / FSDP FULL_SHARD | 7B on 24 GB cards: stage 2 at 12 cards, stage 3 at 6; stage 1 never |
# | one consumer card, the task allows adapters | QLoRA (lesson 04) | 7B QLoRA fits one 24 GB card |
# | one card, full fine-tuning required | ZeRO-3 with CPU offload (ZeRO-Offload / Infinity) | about 0.5 GB of GPU model states, but about 180 GB of CPU RAM and PCIe-bound steps |
# | 70B | ZeRO-3 / FSDP on several 80 GB cards, or QLoRA | 70B stage 3 needs 156 GB of model states per GPU even on 8 GPUs (§3 table) |
#
# **Communication, honestly.** DDP all-reduces every gradient once per step; a ring all-reduce sends and
# receives about 2·(N−1)/N times the gradient bytes per GPU (a reduce-scatter plus an all-gather). ZeRO
# stages 1 and 2 move the *same* volume as DDP: they reduce-scatter the gradients and all-gather the
# updated weights, the two halves of that all-reduce (ZeRO §7) — per optimizer step without gradient
# accumulation: with k accumulation steps, DDP under `no_sync` and ZeRO-1 reduce once per step, while
# ZeRO-2 and ZeRO-3 reduce-scatter after every micro-batch (DeepSpeed's `engine.allreduce_gradients`:
# "ZeRO stage >= 2 communicates during non gradient accumulation boundaries as well"). Only stage 3 / FSDP FULL_SHARD adds
# traffic: the weights are all-gathered in the forward pass and again in the backward pass, about 1.5×
# DDP's volume (ZeRO §7), so it pays off only when the memory saved lets the job run at all, or with a
# larger batch. What this CPU demonstration
# does **not** tell: its "interconnect" is two processes on one machine talking through gloo in shared
# memory, with 1.4M parameters; the share measured in §1 says nothing about PCIe, NVLink or a network
# between nodes, nor about NCCL overlapping communication with the backward pass on a GPU. On real GPUs,
# measure with your own model, batch and hardware. What the demonstration *does* show holds on any
# hardware: the same global batch gives the same training, DDP replicates the model states, and sharding
# divides them.
#
# ### What you would write on a real cluster
#
# On GPUs nothing in the training script changes; the launch configuration does. `accelerate config`
# asks questions and writes a YAML file that `accelerate launch --config_file FILE train.py` reads. For
# FSDP2 full sharding on one node of 8 GPUs it looks like this (key names as accelerate 1.15 writes them;
# `fsdp_reshard_after_forward: true` is FULL_SHARD, `false` is SHARD_GRAD_OP):
#
# ```yaml
# compute_environment: LOCAL_MACHINE
# distributed_type: FSDP
# mixed_precision: bf16
# num_machines: 1
# num_processes: 8
# fsdp_config:
#   fsdp_version: 2
#   fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP
#   fsdp_transformer_layer_cls_to_wrap: LlamaDecoderLayer
#   fsdp_reshard_after_forward: true
#   fsdp_state_dict_type: SHARDED_STATE_DICT
#   fsdp_cpu_ram_efficient_loading: true
# ```
#
# With DeepSpeed instead, the YAML has `distributed_type: DEEPSPEED`, no `mixed_precision` or `fsdp_config`
# lines (accelerate 1.15 refuses `mixed_precision` next to a JSON file; the JSON sets it), and
# `deepspeed_config: {deepspeed_config_file: ds_zero3.json}`, pointing at DeepSpeed's own JSON, for ZeRO-3 with the optimizer states offloaded to CPU RAM:
#
# ```json
# {"train_micro_batch_size_per_gpu": 1, "gradient_accumulation_steps": 4,
#  "bf16": {"enabled": true},
#  "zero_optimization": {"stage": 3, "offload_optimizer": {"device": "cpu"},
#                        "overlap_comm": true, "stage3_gather_16bit_weights_on_model_save": true}}
# ```
#
# **Gradient accumulation under DDP.** By default DDP all-reduces at every backward pass. When several
# forward/backward passes feed one optimizer step, the all-reduces of all but the last are wasted: the
# gradients only need averaging once, before the step. `model.no_sync()` is a context manager that skips
# the all-reduce, so the gradients accumulate locally; the backward pass of the last micro-batch runs
# outside it and all-reduces the sum. accelerate does this for you inside
# `with accelerator.accumulate(model):` when `gradient_accumulation_steps` is set. (FSDP has the same
# switch — in FSDP2 `set_requires_gradient_sync(False)`, which `accelerator.no_sync` calls — but skipping the
# reduce-scatter keeps whole, unsharded gradients in memory until the step.)
#
# ## Summary
#
# - One script, launched as one process or with `accelerate launch --num_processes 2`, trains the same
#   model: with the same global batch and seed, the losses and weights agree to float rounding (§1).
# - DDP keeps a full copy of parameters, gradients and optimizer states in every process; FSDP2
#   (`fully_shard`) keeps one shard each: half per process with two (§2).
# - ZeRO stage 1 shards the optimizer states, 2 also the gradients, 3 also the weights; `course vram
#   --num-gpus N --zero-stage S` gives the model states per GPU, as DeepSpeed's estimators count them (§3).
# - For a 7B full fine-tune on 24 GB cards: stage 3 on 6 cards, stage 2 on 12, stages 0 and 1 never;
#   QLoRA on one card; full CPU offload on one card with a lot of RAM (§3).
# - ZeRO stages 1 and 2 communicate as much as DDP per step without accumulation (with it, stage 2
#   reduce-scatters every micro-batch); stage 3 (FSDP FULL_SHARD) about 1.5× as much (ZeRO §7).
#   A CPU run tells you about correctness, not about interconnects, and its measured all-reduce share is
#   an upper bound (a blocking hook, no overlap) (§1, §4).
#
# **Exercises:** [exercises/08_beyond_one_gpu.ipynb](../exercises/08_beyond_one_gpu.ipynb) — ZeRO memory by
# hand, the global batch with gradient accumulation (lesson 04 for accumulation), reading a DDP log, and
# choosing a stage and a GPU count that fit.
