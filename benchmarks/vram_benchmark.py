"""Measure training memory and compare it with course_lib.vram's estimate; write a receipt (lesson 04).

    python benchmarks/vram_benchmark.py                      # CUDA: Llama-2-7B shapes, real training steps
    python benchmarks/vram_benchmark.py --card-gb 10         # simulated RTX 3080: cap usable memory at 10 GB
    python benchmarks/vram_benchmark.py --smoke              # CPU, tiny shapes: checks the script (tests use it)
    python benchmarks/vram_benchmark.py --cpu                # CPU, course-tiny sizes: an RSS-substitute receipt

The models are Llama-shaped with random weights: memory depends on shapes, not values. Each run
builds the model, takes `--steps` optimizer steps of full fine-tuning, LoRA or QLoRA and records the
peak (torch.cuda.max_memory_allocated on CUDA; on CPU the labelled RSS substitute). A run that
does not fit is recorded as out of memory, not skipped. The receipt goes to
benchmarks/results/vram-<device>.json with the versions of torch, transformers, peft, bitsandbytes.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import json
import sys
from dataclasses import asdict
from pathlib import Path

import torch

from course_lib.memtrack import measure_peak_memory
from course_lib.vram import PRESETS, ModelShape, VramConfig, estimate_memory

ROOT = Path(__file__).resolve().parent


def build_model(shape: ModelShape, method: str, dtype: torch.dtype, device: str, r: int, checkpointing: bool):
    """A random Llama of `shape`, prepared for `method` ("full", "lora", "qlora"), on `device`."""
    import peft
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=shape.vocab_size, hidden_size=shape.hidden_size,
                      intermediate_size=shape.intermediate_size, num_hidden_layers=shape.num_hidden_layers,
                      num_attention_heads=shape.num_attention_heads, num_key_value_heads=shape.num_key_value_heads,
                      tie_word_embeddings=shape.tie_word_embeddings, attn_implementation="eager")
    with torch.device("meta"):
        model = LlamaForCausalLM(cfg)
    model = model.to_empty(device=device).to(dtype)
    with torch.no_grad():  # values do not matter for memory; keep them small so the loss stays finite
        for p in model.parameters():
            p.normal_(0, 0.02)
        for name, b in model.named_buffers():  # rotary frequencies must be real numbers
            if "inv_freq" in name:
                head = shape.hidden_size // shape.num_attention_heads
                b.copy_(1.0 / (10000 ** (torch.arange(0, head, 2, device=device).float() / head)))
    if method == "qlora":
        model = quantize_linears(model, dtype)
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if method in ("lora", "qlora"):
        model.enable_input_require_grads()
        model = peft.get_peft_model(model, peft.LoraConfig(r=r, lora_alpha=16, target_modules="all-linear"),
                                    autocast_adapter_dtype=False)  # adapters in the model's dtype, as estimated
    return model


def quantize_linears(model, dtype):
    """Replace each decoder nn.Linear by a bitsandbytes NF4 Linear4bit with double quantization."""
    import bitsandbytes as bnb
    for name, module in list(model.model.layers.named_modules()):
        if isinstance(module, torch.nn.Linear):
            parent_name, _, child = name.rpartition(".")
            parent = model.model.layers.get_submodule(parent_name)
            q = bnb.nn.Linear4bit(module.in_features, module.out_features, bias=False, compute_dtype=dtype,
                                  compress_statistics=True, quant_type="nf4", device="meta")
            weight = module.weight.data
            packed, state = bnb.functional.quantize_4bit(weight, blocksize=64, compress_statistics=True,
                                                         quant_type="nf4")
            q.weight = bnb.nn.Params4bit(packed, requires_grad=False, quant_state=state, blocksize=64,
                                         compress_statistics=True, quant_type="nf4", module=q, bnb_quantized=True)
            setattr(parent, child, q)
            del module, weight
    gc.collect()
    return model


def make_optimizer(model, name: str):
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "sgd":
        return torch.optim.SGD(params, lr=1e-4)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=1e-4)
    import bitsandbytes as bnb
    return (bnb.optim.PagedAdamW8bit if name.startswith("paged") else bnb.optim.AdamW8bit)(params, lr=1e-4)


def one_run(shape: ModelShape, cfg: VramConfig, device: str, steps: int) -> dict:
    """Build, train `steps` steps and return the measured peak (or an out-of-memory record)."""
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "mixed": torch.bfloat16}[cfg.precision]

    def work():
        model = build_model(shape, cfg.method, torch.float32 if cfg.precision == "fp32" else dtype, device,
                            cfg.lora_r, cfg.gradient_checkpointing)
        opt = make_optimizer(model, cfg.optimizer)
        ids = torch.randint(0, shape.vocab_size, (cfg.batch_size, cfg.seq_len), device=device)
        for _ in range(steps):
            loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        del model, opt

    record = {"config": asdict(cfg), "predicted_bytes": estimate_memory(shape, cfg).total,
              "predicted_without_overhead_bytes": estimate_memory(shape, cfg).total - cfg.overhead_bytes}
    try:
        peak = measure_peak_memory(work, device=device)
        record.update(measured_peak_bytes=peak.peak_bytes, measurement=peak.method, oom=False)
    except torch.OutOfMemoryError:
        record.update(measured_peak_bytes=None, measurement="out of memory", oom=True)
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    return record


def plan(args) -> list[tuple[str, ModelShape, VramConfig]]:
    if args.smoke:  # seconds on a CPU: exercises every method once
        shape = ModelShape(64, 128, 2, 4, 4, 256)
        return [("smoke", shape, VramConfig(method=m, precision="fp32", batch_size=2, seq_len=32, lora_r=4,
                                            overhead_bytes=0)) for m in ("full", "lora", "qlora")]
    if args.cpu:  # course-tiny and a 4× wider model, the honest CPU substitute
        runs = []
        for name, shape in (("course-tiny", PRESETS["course-tiny"]), ("tiny-x4", ModelShape(512, 1536, 4, 8, 8, 4096))):
            for method in ("full", "lora", "qlora"):
                for b in (4, 16):
                    runs.append((name, shape, VramConfig(method=method, precision="fp32", batch_size=b, seq_len=256,
                                                         overhead_bytes=0)))
        return runs
    runs = []
    for method in ("full", "lora", "qlora"):
        for b, s in ((1, 512), (4, 512), (1, 2048), (4, 2048)):
            for ckpt in (False, True):
                runs.append(("llama-2-7b", PRESETS["llama-2-7b"],
                             VramConfig(method=method, precision="bf16", batch_size=b, seq_len=s,
                                        gradient_checkpointing=ckpt,
                                        optimizer="paged-adamw-8bit" if method == "qlora" else "adamw")))
    return runs


def versions() -> dict:
    out = {}
    for pkg in ("torch", "transformers", "peft", "bitsandbytes"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny shapes on the CPU (seconds)")
    p.add_argument("--cpu", action="store_true", help="course-tiny sizes on the CPU, RSS substitute")
    p.add_argument("--card-gb", type=float, default=None, help="simulate a smaller card, e.g. 10 or 24 (CUDA only)")
    p.add_argument("--steps", type=int, default=2, help="optimizer steps per run (the second shows optimizer state)")
    p.add_argument("--out", type=Path, default=None, help="receipt path (default benchmarks/results/vram-<device>.json)")
    args = p.parse_args(argv)
    device = "cpu" if (args.smoke or args.cpu) else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("vram_benchmark: no CUDA GPU here; use --cpu for the CPU substitute or --smoke to test the script",
              file=sys.stderr)
        return 2
    name = "cpu"
    if device == "cuda":
        name = torch.cuda.get_device_name(0).replace(" ", "-").lower()
        if args.card_gb:
            total = torch.cuda.get_device_properties(0).total_memory
            torch.cuda.set_per_process_memory_fraction(min(1.0, args.card_gb * 1e9 / total))
            name += f"-capped-{args.card_gb:g}gb"
    elif args.card_gb:
        print("vram_benchmark: --card-gb needs a CUDA GPU", file=sys.stderr)
        return 2
    receipt = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
               "measurement": ("torch.cuda.max_memory_allocated (tensors only, no CUDA context)" if device == "cuda"
                               else "CPU SUBSTITUTE: peak RSS increase while building and training; "
                                    "not GPU memory"),
               "simulated_card_gb": args.card_gb, "versions": versions(), "runs": []}
    for model_name, shape, cfg in plan(args):
        record = {"model": model_name, **one_run(shape, cfg, device, args.steps)}
        receipt["runs"].append(record)
        m = record["measured_peak_bytes"]
        print(f"{model_name:12s} {cfg.method:6s} b={cfg.batch_size} s={cfg.seq_len} ckpt={cfg.gradient_checkpointing!s:5s} "
              f"predicted {record['predicted_bytes'] / 1e9:7.3f} GB  measured "
              f"{'OOM' if m is None else f'{m / 1e9:7.3f} GB'}", flush=True)
    out = args.out or ROOT / "results" / f"vram-{'smoke' if args.smoke else name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(receipt, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
