# %% [markdown]
# # Exercises 04 — QLoRA and training memory
#
# Six graded parts, after lesson 04. In each answer cell your code replaces the two lines `# YOUR CODE HERE` and
# `raise NotImplementedError()`; then run the test cell below it, whose visible tests explain what is
# wrong. Runtime: a few seconds on a CPU.

# %%
from course_lib.doctor import versions_line
from course_lib.models import set_threads
from course_lib.notebook import quiet_notebook

set_threads()  # one CPU thread (COURSE_THREADS): the same numbers on every machine
quiet_notebook()  # no progress bars, known notices or DeepSpeed's CPU warning in the saved outputs
print(versions_line())

# %%
import torch

from course_lib.grading import check
from course_lib.models import set_seed
from course_lib.memory import nf4_table

set_seed(0)
NF4 = nf4_table()  # the 16 NF4 values, sorted from -1 to 1

# %% [markdown]
# ## Q1 (3 points) — NF4-quantize one block
# For a 1-D tensor `block` of 64 weights, return `(codes, absmax)`: absmax is the largest |w| (a
# 0-d float tensor), and codes (uint8, same shape as block) are the index of the NF4 value nearest
# to w / absmax.

# %%
def quantize_block(block: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """NF4 codes and the absmax of one block."""
    ### BEGIN SOLUTION
    absmax = block.abs().max()
    codes = (block[:, None] / absmax - NF4[None, :]).abs().argmin(dim=1).to(torch.uint8)
    return codes, absmax
    ### END SOLUTION

# %% course={"grade_id": "q1_nf4_block", "points": 3}
from course_lib.grading import check
from course_lib.memory import quantize_nf4

torch.manual_seed(0)
block = torch.randn(64) * 0.02
codes, absmax = quantize_block(block)
check.shape("codes_shape", codes, (64,), hint="one code per weight")
check.equal("codes_dtype", str(codes.dtype), "torch.uint8", hint="codes are small integers: use .to(torch.uint8)")
ref_codes, ref_absmax = quantize_nf4(block)
check.close("absmax", absmax, ref_absmax[0], rel_tol=1e-6, hint="absmax is the largest |w| of the block")
check.equal("codes", codes.tolist(), ref_codes.tolist(), hint="nearest NF4 value to w / absmax")
### BEGIN HIDDEN TESTS
b2 = torch.linspace(-3, 1, 64)
check.equal("codes_hidden", quantize_block(b2)[0].tolist(), quantize_nf4(b2)[0].tolist())
### END HIDDEN TESTS

# %% [markdown]
# ## Q2 (2 points) — dequantize
# Return the float32 weights that `codes` and `absmax` stand for.

# %%
def dequantize_block(codes: torch.Tensor, absmax: torch.Tensor) -> torch.Tensor:
    """NF4[codes] × absmax."""
    ### BEGIN SOLUTION
    return NF4[codes.long()] * absmax
    ### END SOLUTION

# %% course={"grade_id": "q2_dequant", "points": 2}
from course_lib.grading import check
from course_lib.memory import dequantize_nf4

back = dequantize_block(codes, absmax)
check.shape("back_shape", back, (64,))
check.close("back", back, dequantize_nf4(ref_codes, ref_absmax), abs_tol=1e-7, hint="look codes up in NF4, times absmax")
### BEGIN HIDDEN TESTS
check.close("back_hidden", dequantize_block(torch.tensor([0, 7, 15], dtype=torch.uint8), torch.tensor(2.0)),
            torch.tensor([-2.0, 0.0, 2.0]), abs_tol=1e-6)
### END HIDDEN TESTS

# %% [markdown]
# ## Q3 (2 points) — bits per parameter
# Return the storage cost in bits per weight of 4-bit codes with one float32 constant per block of
# `blocksize`; with `double_quant`, the constants are 8-bit with one float32 per 256 of them.

# %%
def bits_per_param(blocksize: int = 64, double_quant: bool = False) -> float:
    """4 bits plus each weight's share of the constants."""
    ### BEGIN SOLUTION
    if double_quant:
        return 4 + 8 / blocksize + 32 / (blocksize * 256)
    return 4 + 32 / blocksize
    ### END SOLUTION

# %% course={"grade_id": "q3_bits", "points": 2}
from course_lib.grading import check

check.close("bits_plain", bits_per_param(), 4.5, rel_tol=1e-9, hint="32 bits of absmax shared by 64 weights: +0.5")
check.close("bits_dq", bits_per_param(double_quant=True), 4.126953125, rel_tol=1e-9,
            hint="8/64 + 32/(64·256) on top of 4")
### BEGIN HIDDEN TESTS
check.close("bits_128", bits_per_param(128), 4.25, rel_tol=1e-9)
check.close("bits_128_dq", bits_per_param(128, True), 4 + 8 / 128 + 32 / (128 * 256), rel_tol=1e-9)
### END HIDDEN TESTS

# %% [markdown]
# ## Q4 (3 points) — memory of full fine-tuning, before activations
# Mixed-precision AdamW keeps, per parameter, a 16-bit weight, a 16-bit gradient, and fp32 master
# weight, m and v (ZeRO §3.1). Return the bytes for `n_params` parameters (weights + gradients +
# optimizer states, no activations).

# %%
def full_ft_bytes(n_params: int) -> int:
    """Bytes of weights, gradients and optimizer states."""
    ### BEGIN SOLUTION
    return n_params * (2 + 2 + 4 + 4 + 4)
    ### END SOLUTION

# %% course={"grade_id": "q4_full_ft", "points": 3}
from course_lib.grading import check
from course_lib.memory import PRESETS, VramConfig, estimate_memory

check.equal("full_1000", full_ft_bytes(1000), 16000, hint="2 + 2 + 12 = 16 bytes per parameter")
e = estimate_memory(PRESETS["llama-2-7b"], VramConfig(method="full", precision="mixed"))
check.equal("full_7b", full_ft_bytes(6_738_415_616), e.weights + e.gradients + e.optimizer_states,
            hint="Llama-2-7B has 6,738,415,616 parameters")
### BEGIN HIDDEN TESTS
check.equal("full_13b", full_ft_bytes(13_015_864_320), 16 * 13_015_864_320)
### END HIDDEN TESTS

# %% [markdown]
# ## Q5 (2 points) — a stated configuration
# Use `course_lib.memory.vram.estimate_memory` for Llama-2-13B with QLoRA (r = 16, all-linear), bf16,
# paged 8-bit AdamW, batch 2 × 1024 tokens, gradient checkpointing. Set `total_gb` to the total in
# GB (1e9 bytes) and `fits_10gb` to whether it fits a 10 GB card.

# %%
### BEGIN SOLUTION
est = estimate_memory(PRESETS["llama-2-13b"], VramConfig(method="qlora", precision="bf16", optimizer="paged-adamw-8bit",
                                                         batch_size=2, seq_len=1024, gradient_checkpointing=True,
                                                         lora_r=16))
total_gb = est.total / 1e9
fits_10gb = total_gb <= 10
### END SOLUTION
print(f"{total_gb:.2f} GB, fits: {fits_10gb}")

# %% course={"grade_id": "q5_estimate", "points": 2}
from course_lib.grading import check

expected = estimate_memory(PRESETS["llama-2-13b"], VramConfig(
    method="qlora", precision="bf16", optimizer="paged-adamw-8bit", batch_size=2, seq_len=1024,
    gradient_checkpointing=True, lora_r=16)).total / 1e9
check.close("total_gb", total_gb, expected, rel_tol=1e-6, hint="GB means 1e9 bytes here; use the stated batch and length")
check.equal("fits_10gb", fits_10gb, expected <= 10)

# %% [markdown]
# ## Q6 (3 points) — a decision, checked by a measurement
# You will fine-tune course-tiny with LoRA (r = 16 on every linear layer, bf16, SDPA attention, 256
# tokens per sequence) on a device with a **100 MB** budget for tensors. Which batch size — 1, 2, 4, 8
# or 16 — is the largest that fits? Predict with `course_lib.memory.vram.estimate_memory(PRESETS["course-tiny"],
# VramConfig(...))`, then check your choice with `course_lib.memory.memtrack.track_training_step` (PyTorch's
# MemTracker on fake tensors: a few seconds). Set `batch_choice` to the batch size and
# `tracked_peak_mb` to the tracker's peak for it, in MB (1e6 bytes).

# %%
from course_lib.memory import track_training_step

### BEGIN SOLUTION
def lora_config(batch_size: int) -> VramConfig:
    return VramConfig(method="lora", precision="bf16", batch_size=batch_size, seq_len=256)


predicted = {b: estimate_memory(PRESETS["course-tiny"], lora_config(b)).peak for b in (1, 2, 4, 8, 16)}
batch_choice = max(b for b, peak in predicted.items() if peak <= 100e6)
tracked_peak_mb = track_training_step(PRESETS["course-tiny"], lora_config(batch_choice)).peak / 1e6
### END SOLUTION
print(f"batch {batch_choice}: tracked peak {tracked_peak_mb:.1f} MB")

# %% course={"grade_id": "q6_batch_decision", "points": 3}
from course_lib.grading import check
from course_lib.memory import track_training_step
from course_lib.memory import PRESETS, VramConfig


def tracked_mb(batch_size: int) -> float:
    config = VramConfig(method="lora", precision="bf16", batch_size=batch_size, seq_len=256)
    return track_training_step(PRESETS["course-tiny"], config).peak / 1e6


check.close("tracked_peak_mb", tracked_peak_mb, tracked_mb(batch_choice), rel_tol=1e-9,
            hint="measure the batch you chose, with the LoRA set-up stated above")
check.equal("fits_100mb", tracked_peak_mb <= 100, True, hint="the tracker says this batch does not fit in 100 MB")
check.equal("next_too_big", tracked_mb(2 * batch_choice) > 100, True,
            hint="twice this batch still fits: the largest one that fits is bigger")
### BEGIN HIDDEN TESTS
check.equal("batch_choice", batch_choice, 4)
### END HIDDEN TESTS
