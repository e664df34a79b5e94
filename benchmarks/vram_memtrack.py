"""The VRAM receipt without a GPU: `course vram`'s peak against PyTorch's MemTracker on 1B–13B shapes.

    python benchmarks/vram_memtrack.py                      # every configuration -> benchmarks/results/vram_memtrack.json
    python benchmarks/vram_memtrack.py --only 0 4           # some of them

Each configuration builds a Llama of a published shape (random weights: memory does not depend on
their values) inside FakeTensorMode, runs two AdamW steps under MemTracker
(course_lib.memory.memtrack.track_training_step) and records the tracked peak with its split by category
next to `estimate_memory`'s prediction of the same job and the relative error. No tensor is
allocated, so a 13B model is measured on a laptop. 4-bit layers cannot run on fake tensors: QLoRA
is not in this receipt (its weights are counted exactly in tests/test_vram.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from course_lib.doctor import versions_line
from course_lib.memory import track_training_step
from course_lib.memory import PRESETS, VramConfig, estimate_memory

OUT = Path(__file__).resolve().parent / "results" / "vram_memtrack.json"

CONFIGS = [  # (preset, VramConfig fields)
    ("llama-3.2-1b", dict(method="full", precision="bf16", batch_size=4, seq_len=512)),
    ("llama-3.2-1b", dict(method="full", precision="bf16", batch_size=4, seq_len=512, attn_implementation="eager")),
    ("llama-3.2-1b", dict(method="full", precision="fp32", batch_size=2, seq_len=512)),
    ("llama-3.2-1b", dict(method="full", precision="mixed", batch_size=4, seq_len=512)),
    ("llama-2-7b", dict(method="full", precision="bf16", batch_size=1, seq_len=512)),
    ("llama-2-7b", dict(method="full", precision="bf16", batch_size=2, seq_len=1024, gradient_checkpointing=True)),
    ("llama-2-7b", dict(method="lora", precision="bf16", batch_size=4, seq_len=1024)),
    ("llama-2-7b", dict(method="lora", precision="bf16", batch_size=4, seq_len=1024, attn_implementation="eager")),
    ("llama-2-7b", dict(method="lora", precision="bf16", batch_size=4, seq_len=1024, gradient_checkpointing=True)),
    ("llama-2-13b", dict(method="lora", precision="bf16", batch_size=2, seq_len=2048, lora_targets="attention")),
    ("llama-2-13b", dict(method="lora", precision="bf16", batch_size=1, seq_len=2048, gradient_checkpointing=True)),
    ("llama-2-13b", dict(method="full", precision="bf16", batch_size=1, seq_len=1024)),
]


def receipt_row(preset: str, fields: dict) -> dict:
    config = VramConfig(**fields)
    predicted = estimate_memory(PRESETS[preset], config)
    tracked = track_training_step(PRESETS[preset], config)
    return {"model": preset, "config": asdict(config),
            "tracked_peak_bytes": tracked.peak, "tracked_by_category": tracked.by_category,
            "tracked_forward_activations_bytes": tracked.forward_activations,
            "predicted_peak_bytes": predicted.peak, "predicted_phase": predicted.phase,
            "predicted_parts": predicted.to_json(),
            "relative_error": round(predicted.peak / tracked.peak - 1, 4),
            "activations_relative_error": round(predicted.activations / tracked.forward_activations - 1, 4),
            "seconds": round(tracked.seconds, 1), "notes": tracked.notes}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", type=int, nargs="*", help="indices into CONFIGS")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    picked = [CONFIGS[i] for i in args.only] if args.only else CONFIGS
    start, rows = time.perf_counter(), []
    for preset, fields in picked:
        row = receipt_row(preset, fields)
        rows.append(row)
        print(f"{preset:13s} {json.dumps(fields):110s} tracked {row['tracked_peak_bytes'] / 1e9:7.2f} GB  "
              f"predicted {row['predicted_peak_bytes'] / 1e9:7.2f} GB  {row['relative_error']:+.1%}  "
              f"({row['seconds']:.0f} s)", flush=True)
    worst = max(abs(r["relative_error"]) for r in rows)
    receipt = {"command": "python benchmarks/vram_memtrack.py", "versions": versions_line(),
               "measurement": "torch.distributed._tools.mem_tracker.MemTracker under FakeTensorMode: tensor bytes "
                              "of two AdamW steps (steady state), no GPU, no allocation",
               "seconds": round(time.perf_counter() - start), "worst_relative_error": worst, "runs": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(receipt, indent=1) + "\n")
    print(f"worst |error| {worst:.1%}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
