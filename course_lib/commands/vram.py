"""`course vram`: lesson 04's memory table for one GPU, or lesson 08's per-GPU table under ZeRO.

The estimator is course_lib.memory.vram, the fake-tensor measurement course_lib.memory.memtrack, the
ZeRO sharding course_lib.memory.zero; this module only reads the options and prints.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from course_lib.memory.memtrack import track_training_step
from course_lib.memory.vram import PRESETS, VramConfig, activation_bytes, estimate_memory, model_shape
from course_lib.memory.zero import model_states_per_gpu

__all__ = ["VramArgs", "vram", "COMMANDS"]


@dataclass
class VramArgs:
    """What to estimate and how to print it."""

    model: str = field(default="llama-2-7b", metadata={"help": f"{', '.join(PRESETS)}, a folder with a "
                                                              "config.json, or a hub id in the local cache"})
    json: bool = field(default=False, metadata={"help": "print machine-readable JSON"})
    check: bool = field(default=False, metadata={"help": "also measure the same job with PyTorch's MemTracker on "
                                                         "fake tensors (no GPU, no allocation; ~1 min for 7B)"})
    num_gpus: int = field(default=1, metadata={"help": "data-parallel GPUs (lesson 08): with --zero-stage, print "
                                                       "full fine-tuning's model states per GPU"})
    zero_stage: int = field(default=-1, metadata={"help": "ZeRO stage 0-3 (0: DDP, 1: optimizer states sharded, "
                                                         "2: + gradients, 3: + parameters = FSDP FULL_SHARD); "
                                                         "-1: one GPU, lesson 04's table"})


def vram(args: VramArgs, config: VramConfig) -> int:
    if args.zero_stage != -1 or args.num_gpus != 1:
        if args.zero_stage == -1:
            raise ValueError("--num-gpus needs --zero-stage (0 for plain data parallel)")
        return _zero_table(args, config)
    est = estimate_memory(model_shape(args.model), config)
    tracked = None
    if args.check:
        tracked = track_training_step(model_shape(args.model), config)
    if args.json:
        extra = {"tracked_peak_bytes": tracked.peak, "tracked_by_category": tracked.by_category} if tracked else {}
        print(json.dumps({"model": args.model, "config": asdict(config), **est.to_json(), **extra}, indent=1))
    else:
        gc = ", gradient checkpointing" if config.gradient_checkpointing else ""
        if config.method != "full":
            gc += ", fp32 adapters (peft's default)" if config.fp32_adapters else ", adapters in the model's dtype"
        if config.prepared_4bit:
            gc += ", fp32 embeddings and norms (prepare_model_for_kbit_training)"
        print(est.table(f"{args.model}: {config.method}, {config.precision}, {config.optimizer}, batch "
                        f"{config.batch_size} × {config.seq_len} tokens{gc}"))
        print(f"  trainable parameters: {est.trainable_parameters:,} of {est.total_parameters:,}")
        if tracked:
            parts = ", ".join(f"{k} {v / 1e9:.2f}" for k, v in tracked.by_category.items() if v)
            print(f"  MemTracker (fake tensors): peak {tracked.peak / 1e9:.2f} GB ({parts} GB); the estimate's "
                  f"tensor peak is {est.peak / tracked.peak - 1:+.1%} off it ({tracked.seconds:.0f} s)")
    return 0


def _zero_table(args: VramArgs, config: VramConfig) -> int:
    """`course vram --num-gpus N --zero-stage S`: model states, activations and overhead on each GPU."""
    shape = model_shape(args.model)
    states = model_states_per_gpu(shape, args.zero_stage, args.num_gpus)
    act = activation_bytes(shape, config).saved
    total = states.total + act + config.overhead_bytes
    if args.json:
        print(json.dumps({"model": args.model, "num_gpus": args.num_gpus, "zero_stage": args.zero_stage,
                          "config": asdict(config), **{f"{k}_bytes": v for k, v in states._asdict().items()},
                          "model_states_bytes": states.total, "activations_bytes": act,
                          "overhead_bytes": config.overhead_bytes, "total_bytes": total}, indent=1))
        return 0
    print(f"{args.model}: full fine-tuning, mixed-precision Adam, ZeRO stage {args.zero_stage} on {args.num_gpus} "
          f"GPU(s); per GPU:")
    for name, value in states._asdict().items():
        print(f"  {name.replace('_', ' '):24s}{value / 1e9:10.2f} GB")
    print(f"  {'model states':24s}{states.total / 1e9:10.2f} GB   (DeepSpeed's estimator counts the same)")
    gc = ", gradient checkpointing" if config.gradient_checkpointing else ""
    print(f"  {'activations':24s}{act / 1e9:10.2f} GB   its own micro-batch: {config.batch_size} × {config.seq_len} "
          f"tokens, {config.precision}{gc}")
    print(f"  {'+ GPU overhead':24s}{config.overhead_bytes / 1e9:10.2f} GB")
    print(f"  {'total on each GPU':24s}{total / 1e9:10.2f} GB   ({total / 2**30:.2f} GiB)")
    return 0


COMMANDS = {
    "vram": ("estimate training memory part by part (weights, gradients, optimizer, activations, ...); lesson 04",
             (VramArgs, VramConfig), vram),
}
