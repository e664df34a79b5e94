"""How much memory each GPU needs when full fine-tuning is spread over N GPUs, by ZeRO stage (lesson 08).

ZeRO (Rajbhandari et al. 2020, §5) shards the model states of data-parallel training over N GPUs: stage 1 the
optimizer states, stage 2 also the gradients, stage 3 also the parameters (= FSDP's FULL_SHARD; SHARD_GRAD_OP is
stage 2). `model_states_per_gpu` counts the bytes as DeepSpeed's engine and its estimators do;
`deepspeed_estimate` asks DeepSpeed itself; `zero_paper_bytes_per_gpu` is the paper's leaner count;
`cards_needed` adds each GPU's activations and overhead from `course_lib.memory.vram` and finds the fewest cards.
`course vram --num-gpus N --zero-stage S` prints it (course_lib.commands.vram).
"""

from __future__ import annotations

from typing import NamedTuple

from course_lib.memory.vram import ModelShape, VramConfig, activation_bytes

__all__ = ["ZERO_STAGES", "ModelStates", "largest_layer_parameters", "model_states_per_gpu", "deepspeed_estimate",
           "zero_paper_bytes_per_gpu", "cards_needed"]

ZERO_STAGES = (0, 1, 2, 3)  # 0: plain DDP; 1: optimizer states sharded; 2: + gradients; 3: + parameters (FULL_SHARD)


class ModelStates(NamedTuple):
    """Bytes of full fine-tuning's model states that one GPU holds under a ZeRO stage (`model_states_per_gpu`)."""

    parameters: int  # 16-bit weights (a shard of them in stage 3)
    gradients: int  # 16-bit gradients (sharded in stages 2 and 3; stage 3 counts them in `gathered`)
    optimizer_states: int  # fp32 master weights and gradients, Adam's m and v: 16 bytes a parameter, sharded from stage 1
    gathered: int  # stage 3: the largest layer's 16-bit weights and gradients, gathered whole while it computes

    @property
    def total(self) -> int:
        return self.parameters + self.gradients + self.optimizer_states + self.gathered


def largest_layer_parameters(shape: ModelShape) -> int:
    """Parameters of the largest single module: what ZeRO-3 gathers whole (the embedding, or the widest MLP matrix)."""
    return max([shape.vocab_size * shape.hidden_size] + [d * k for d, k in shape.linear_shapes().values()])


def model_states_per_gpu(shape: ModelShape, zero_stage: int, num_gpus: int) -> ModelStates:
    """Model-state bytes on each of `num_gpus` GPUs for full fine-tuning with mixed-precision Adam (lesson 08).

    DeepSpeed's accounting (deepspeed/runtime/zero/stage_1_and_2.py, `estimate_zero2_model_states_mem_needs`):
    per parameter 2 bytes of 16-bit weights, 2 of 16-bit gradients, and 16 for the optimizer (fp32 master
    weights 4, fp32 gradients 4, m and v 8). Stage 1 shards the 16, stage 2 also the 16-bit gradients, stage 3
    also the weights; stage 3 adds 4 bytes per parameter of the largest layer, gathered whole
    (deepspeed/runtime/zero/stage3.py, `estimate_zero3_model_states_mem_needs`).
    """
    if zero_stage not in ZERO_STAGES:
        raise ValueError(f"zero_stage must be one of {ZERO_STAGES}, got {zero_stage!r}")
    if not isinstance(num_gpus, int) or isinstance(num_gpus, bool) or num_gpus < 1:
        raise ValueError(f"num_gpus must be a positive integer, got {num_gpus!r}")
    n = shape.parameters
    optimizer = 16 * n // num_gpus if zero_stage >= 1 else 16 * n
    if zero_stage == 3:  # DeepSpeed folds the 16-bit gradient shard into its 18 bytes: 2 weights + 16 optimizer
        return ModelStates(2 * n // num_gpus, 0, optimizer, 4 * largest_layer_parameters(shape))
    gradients = 2 * n // num_gpus if zero_stage == 2 else 2 * n
    return ModelStates(2 * n, gradients, optimizer, 0)


def deepspeed_estimate(shape: ModelShape, zero_stage: int, num_gpus: int,
                       cpu_offload: bool = False) -> tuple[int, int]:
    """(CPU bytes, GPU bytes) from DeepSpeed's own estimator for ZeRO stage 2 or 3 (imports deepspeed; lesson 08).

    What `estimate_zero2_model_states_mem_needs_all_cold` / `estimate_zero3_..._all_cold` print, row by row:
    stage 3 with `cpu_offload` offloads both parameters and optimizer states.
    """
    if zero_stage == 2:  # deepspeed's import warning is silenced in course_lib/__init__.py
        from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

        return estimate_zero2_model_states_mem_needs(shape.parameters, num_gpus, 1, cpu_offload=cpu_offload)
    if zero_stage == 3:
        from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs

        cpu, gpu, _ = estimate_zero3_model_states_mem_needs(shape.parameters, largest_layer_parameters(shape),
                                                            num_gpus, 1, cpu_offload=cpu_offload,
                                                            cpu_offload_params=cpu_offload)
        return int(cpu), int(gpu)
    raise ValueError(f"DeepSpeed estimates stages 2 and 3 only, not {zero_stage!r}")


def zero_paper_bytes_per_gpu(parameters: int, zero_stage: int, num_gpus: int, k: int = 12) -> float:
    """The ZeRO paper's model states per GPU (§5.1, Figure 1): (2 + 2 + K)·Ψ, with K = 12 for mixed-precision Adam."""
    n, shard = parameters, num_gpus
    per_gpu = {0: (4 + k) * n, 1: 4 * n + k * n / shard, 2: 2 * n + (2 + k) * n / shard, 3: (4 + k) * n / shard}
    return per_gpu[zero_stage]


def cards_needed(shape: ModelShape, zero_stage: int, card_bytes: int, config: VramConfig | None = None,
                 max_gpus: int = 1024) -> int | None:
    """The fewest GPUs of `card_bytes` each that hold full fine-tuning under `zero_stage` (None: no count does).

    Each GPU needs its model states, its own micro-batch's activations (`config`, not sharded by ZeRO) and the
    GPU overhead (lesson 08).
    """
    config = config or VramConfig(method="full", precision="mixed", gradient_checkpointing=True)
    per_batch = activation_bytes(shape, config).saved + config.overhead_bytes
    for n in range(1, max_gpus + 1):
        if model_states_per_gpu(shape, zero_stage, n).total + per_batch <= card_bytes:
            return n
    return None
