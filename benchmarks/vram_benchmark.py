"""Measure training memory on a GPU and compare it with `course vram`; write the receipt (lesson 04).

    python benchmarks/vram_benchmark.py                      # CUDA: SmolLM2-135M to Llama-2-70B shapes
    python benchmarks/vram_benchmark.py --only 0 5           # some of the planned runs
    python benchmarks/vram_benchmark.py --smoke              # CPU, tiny shapes: checks the script (tests use it)

The models are Llama-shaped with random weights: memory depends on shapes and dtypes, not values.
Each run builds its model without a full-size intermediate copy (on the meta device, then each
tensor materialised in its final dtype; for QLoRA each decoder linear layer is drawn in 16 bits and
quantized to bitsandbytes NF4 at once, so a 70B model never exists in 16 bits), adds peft LoRA,
takes `--steps` AdamW steps on random token ids and records:

- `footprint_bytes`: tensor bytes after building (weights, 4-bit codes and constants, adapters);
- `measured_peak_bytes`: `torch.cuda.max_memory_allocated` during the steps — every tensor alive at the
  worst moment, weights included — next to `course vram`'s tensor peak (`predicted_peak_bytes`);
- `device_peak_bytes`: the caching allocator's peak reservation plus the CUDA context and libraries
  (what nvidia-smi would show at the peak), next to `course vram`'s total with its assumed overhead;
- the seconds of the last step and its tokens per second.

Two recipes for LoRA and QLoRA: `peft-defaults` is what `get_peft_model` and
`prepare_model_for_kbit_training` do by default (fp32 adapters; for QLoRA also fp32 embeddings and
norms), `lean` keeps everything in the model's 16-bit dtype (what MemTracker tracks with the course's
own LoRA layers); `course vram` predicts both (`--autocast_adapter_dtype`,
`--prepare_model_for_kbit_training`). AdamW is torch's multi-tensor (foreach) version, its CUDA
default, except where the config says `foreach=False`. The plan repeats benchmarks/vram_memtrack.py's
configurations so the GPU, MemTracker and the estimate meet on the same jobs. A run that does not fit
is recorded as out of memory. The receipt goes to benchmarks/results/vram-<device>.json.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import json
import os
import sys
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import torch

from course_lib.memory import METHODS, PRESETS, ModelShape, VramConfig, estimate_memory
from course_lib.tuning import ALL_LINEAR_TARGETS, ATTENTION_TARGETS

ROOT = Path(__file__).resolve().parent
SHAPES = PRESETS  # the published config.json of each model (SmolLM2-135M's among them)
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "mixed": torch.float32}


def _replace_with_nf4(model, dtype: torch.dtype, device: str) -> None:
    """Each decoder nn.Linear (still on the meta device) becomes an NF4 Linear4bit with double quantization,
    its weights drawn in `dtype` on `device` one layer at a time and quantized there."""
    import bitsandbytes as bnb
    for name, module in list(model.model.layers.named_modules()):
        if isinstance(module, torch.nn.Linear):
            parent_name, _, child = name.rpartition(".")
            weight = torch.randn(module.out_features, module.in_features, dtype=dtype, device=device) * 0.02
            q = bnb.nn.Linear4bit(module.in_features, module.out_features, bias=False, compute_dtype=dtype,
                                  compress_statistics=True, quant_type="nf4", device="meta")
            packed, state = bnb.functional.quantize_4bit(weight, blocksize=64, compress_statistics=True,
                                                         quant_type="nf4")
            q.weight = bnb.nn.Params4bit(packed, requires_grad=False, quant_state=state, blocksize=64,
                                         compress_statistics=True, quant_type="nf4", module=q, bnb_quantized=True)
            setattr(model.model.layers.get_submodule(parent_name), child, q)
            del weight


def _materialize(model, shape: ModelShape, dtype: torch.dtype, device: str) -> None:
    """Every tensor still on the meta device, allocated on `device` in `dtype` with small random values."""
    head = shape.hidden_size // shape.num_attention_heads
    for module in model.modules():
        for name, p in list(module._parameters.items()):
            if p is not None and p.is_meta:
                module._parameters[name] = torch.nn.Parameter(
                    torch.empty(p.shape, dtype=dtype, device=device).normal_(0, 0.02), requires_grad=p.requires_grad)
        for name, b in list(module._buffers.items()):
            if b is not None and b.is_meta:  # the rotary frequencies are the only buffers
                module._buffers[name] = 1.0 / (10000 ** (torch.arange(0, head, 2, device=device).float() / head))
    if shape.tie_word_embeddings:
        model.tie_weights()


def build_model(shape: ModelShape, cfg: VramConfig, device: str):
    """A random Llama of `shape`, prepared for `cfg.method` as `cfg` says (peft's defaults or not), on `device`."""
    import peft
    from transformers import LlamaConfig, LlamaForCausalLM

    dtype = DTYPES[cfg.precision]
    config = LlamaConfig(vocab_size=shape.vocab_size, hidden_size=shape.hidden_size,
                         intermediate_size=shape.intermediate_size, num_hidden_layers=shape.num_hidden_layers,
                         num_attention_heads=shape.num_attention_heads, num_key_value_heads=shape.num_key_value_heads,
                         tie_word_embeddings=shape.tie_word_embeddings, max_position_embeddings=max(cfg.seq_len, 2048),
                         attn_implementation=cfg.attn_implementation, use_cache=False)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device("meta"):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    if cfg.method == "qlora":
        _replace_with_nf4(model, dtype, device)
    _materialize(model, shape, dtype, device)
    if cfg.method == "full":
        if cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        return model
    for p in model.parameters():
        p.requires_grad_(False)
    if cfg.method == "qlora" and cfg.prepare_model_for_kbit_training:
        model.is_loaded_in_4bit = True  # what from_pretrained(quantization_config=...) sets
        model = peft.prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing,
                                                     gradient_checkpointing_kwargs={"use_reentrant": False})
    elif cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.gradient_checkpointing:
        model.enable_input_require_grads()  # frozen embeddings: checkpointed blocks need a path for gradients
    targets = list(ALL_LINEAR_TARGETS if cfg.lora_targets == "all-linear" else ATTENTION_TARGETS)
    lora = peft.LoraConfig(r=cfg.lora_r, lora_alpha=2 * cfg.lora_r, target_modules=targets, task_type="CAUSAL_LM")
    return peft.get_peft_model(model, lora, autocast_adapter_dtype=cfg.autocast_adapter_dtype)


def make_optimizer(model, name: str, foreach: bool = True):
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "sgd":
        return torch.optim.SGD(params, lr=1e-4)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=1e-4, foreach=foreach)
    import bitsandbytes as bnb
    return (bnb.optim.PagedAdamW8bit if name.startswith("paged") else bnb.optim.AdamW8bit)(params, lr=1e-4)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def recipe(cfg: VramConfig) -> str:
    """peft-defaults (fp32 adapters; QLoRA through prepare_model_for_kbit_training) or lean (the model's dtype)."""
    if cfg.method == "full":
        return "full"
    return "peft-defaults" if cfg.fp32_adapters else "lean"


def one_run(shape: ModelShape, cfg: VramConfig, device: str, steps: int) -> dict:
    """Build, train `steps` steps and return what was measured next to what was predicted."""
    est = estimate_memory(shape, cfg)
    record = {"config": asdict(cfg), "recipe": recipe(cfg), "predicted_peak_bytes": est.peak, "predicted_phase": est.phase,
              "predicted_bytes": est.total,
              "predicted_footprint_bytes": est.weights + est.quantization_constants + est.lora_parameters}
    cuda = device == "cuda"
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated() if cuda else 0
    model = opt = None
    try:
        start = time.perf_counter()
        model = build_model(shape, cfg, device)
        _sync(device)
        record["build_seconds"] = time.perf_counter() - start
        record["footprint_bytes"] = (torch.cuda.memory_allocated() - before if cuda else
                                     sum(t.nbytes for t in list(model.parameters()) + list(model.buffers())))
        record["trainable_parameters"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
        opt = make_optimizer(model, cfg.optimizer, cfg.foreach and device == "cuda")
        gen = torch.Generator(device=device).manual_seed(0)
        ids = torch.randint(0, shape.vocab_size, (cfg.batch_size, cfg.seq_len), device=device, generator=gen)
        model.train()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        seconds = []
        for _ in range(steps):
            _sync(device)
            t0 = time.perf_counter()
            with torch.autocast(device, dtype=torch.bfloat16, enabled=cfg.precision == "mixed"):
                loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            _sync(device)
            seconds.append(time.perf_counter() - t0)
        record.update(loss=loss.item(), step_seconds=seconds,
                      tokens_per_second=cfg.batch_size * cfg.seq_len / seconds[-1], oom=False)
        if cuda:
            free, total = torch.cuda.mem_get_info()
            context = total - free - torch.cuda.memory_reserved()  # CUDA context, libraries, managed memory
            record.update(measured_peak_bytes=torch.cuda.max_memory_allocated() - before,
                          reserved_peak_bytes=torch.cuda.max_memory_reserved(), context_bytes=context,
                          device_peak_bytes=torch.cuda.max_memory_reserved() + context,
                          measurement="cuda.max_memory_allocated during the steps (tensors, weights included)")
        else:
            record.update(measured_peak_bytes=0, measurement="cpu smoke run: no memory measured")
        record["relative_error"] = round(est.peak / record["measured_peak_bytes"] - 1, 4) if cuda else None
    except torch.OutOfMemoryError as exc:
        record.update(oom=True, measured_peak_bytes=None, measurement="out of memory", error=str(exc)[:300])
    except Exception as exc:  # recorded, not hidden: the receipt says which run broke and why
        record.update(oom=False, measured_peak_bytes=None, measurement="failed", error=f"{type(exc).__name__}: {exc}"[:500])
    del model, opt
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return record


def plan(args) -> list[tuple[str, VramConfig]]:
    """(model, config) for each run. LEAN: adapters in the model's dtype, no fp32 casts (what MemTracker tracks)."""
    lean = dict(autocast_adapter_dtype=False, prepare_model_for_kbit_training=False)
    if args.smoke:  # seconds on a CPU: exercises every method once
        return [("smoke", VramConfig(method=m, precision="fp32", batch_size=2, seq_len=32, lora_r=4, overhead_bytes=0))
                for m in METHODS]
    runs = []
    for method in METHODS:  # the CPU measurement of lesson 04 (`course memory`), on a GPU
        for peft_defaults in (True, False) if method != "full" else (True,):
            runs.append(("smollm2-135m", VramConfig(method=method, batch_size=4, seq_len=256,
                                                    **({} if peft_defaults else lean))))
    sys.path.insert(0, str(ROOT))
    from vram_memtrack import CONFIGS  # the MemTracker receipt's jobs, now on real memory
    runs += [(name, VramConfig(**{**lean, **fields})) for name, fields in CONFIGS]
    runs.append(("llama-2-7b", VramConfig(method="full", batch_size=1, seq_len=512, foreach=False)))  # one tensor at a time
    for peft_defaults in (False, True):  # QLoRA, both recipes, and LoRA beside it
        extra = {} if peft_defaults else lean
        for b, s, ckpt in ((1, 512, False), (4, 1024, False), (4, 1024, True), (1, 2048, True)):
            runs.append(("llama-2-7b", VramConfig(method="qlora", batch_size=b, seq_len=s, gradient_checkpointing=ckpt,
                                                  **extra)))
        runs += [("llama-2-7b", VramConfig(method="lora", batch_size=1, seq_len=512, **extra)),
                 ("llama-2-7b", VramConfig(method="lora", batch_size=2, seq_len=2048, gradient_checkpointing=True,
                                           **extra)),
                 ("llama-2-13b", VramConfig(method="qlora", batch_size=1, seq_len=2048, gradient_checkpointing=True,
                                            **extra)),
                 ("llama-2-70b", VramConfig(method="qlora", batch_size=1, seq_len=512, gradient_checkpointing=True,
                                            **extra))]
    runs += [("llama-2-7b", VramConfig(method="qlora", batch_size=1, seq_len=512, optimizer="paged-adamw-8bit")),
             ("llama-3.2-1b", VramConfig(method="lora", batch_size=4, seq_len=512)),
             ("llama-3.2-1b", VramConfig(method="qlora", batch_size=4, seq_len=512))]
    return runs


def breakdown(shape: ModelShape, cfg: VramConfig, device: str) -> dict:
    """The same job under PyTorch's MemTracker on real tensors: bytes by category at the peak."""
    from course_lib.memory import track_model_steps
    model = build_model(shape, cfg, device)
    ids = torch.randint(0, shape.vocab_size, (cfg.batch_size, cfg.seq_len), device=device)
    tracked = track_model_steps(model, ids, steps=2)
    del model
    gc.collect()
    return {"peak_bytes": tracked.peak, "by_category": tracked.by_category,
            "forward_activations_bytes": tracked.forward_activations}


def nf4_check(device: str) -> dict:
    """course_lib.memory.quant's NF4 (written by hand, on the CPU) against bitsandbytes' kernel on `device`."""
    import bitsandbytes.functional as F

    from course_lib.memory import dequantize_nf4, quantize_nf4
    w = torch.randn(4096, 4096, generator=torch.Generator().manual_seed(0)) * 0.02
    packed, state = F.quantize_4bit(w.to(device), blocksize=64, quant_type="nf4")
    flat = packed.reshape(-1).cpu()
    theirs = torch.stack([flat >> 4, flat & 0xF], dim=1).reshape(-1)[: w.numel()]
    codes, absmax = quantize_nf4(w, blocksize=64)
    ours = dequantize_nf4(codes, absmax)
    return {"device": device, "elements": w.numel(), "codes_differing": int((codes.reshape(-1) != theirs).sum()),
            "absmax_max_abs_diff": float((absmax - state.absmax.cpu()).abs().max()),
            "dequantized_max_abs_diff": float((ours - F.dequantize_4bit(packed, state).cpu().reshape(w.shape)).abs().max())}


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
    p.add_argument("--smoke", action="store_true", help="tiny shapes on the CPU (seconds): checks the script")
    p.add_argument("--steps", type=int, default=3, help="optimizer steps per run (the peak is reached from step 2 on)")
    p.add_argument("--only", type=int, nargs="*", default=None, help="indices into the plan")
    p.add_argument("--breakdown", type=int, nargs="*", default=(), help="plan indices to repeat under MemTracker")
    p.add_argument("--out", type=Path, default=None, help="receipt path (default benchmarks/results/vram-<device>.json)")
    args = p.parse_args(argv)
    # transformers 5 renamed gradient_checkpointing_* (the old names, which peft calls, still work)
    warnings.filterwarnings("ignore", message=".*gradient_checkpointing.* is deprecated", category=FutureWarning)
    device = "cpu" if args.smoke else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("vram_benchmark: no CUDA GPU here; --smoke checks the script on the CPU (lesson 04 explains the "
              "CPU-side receipts: benchmarks/vram_memtrack.py and `course memory`)", file=sys.stderr)
        return 2
    name = "smoke" if args.smoke else torch.cuda.get_device_name(0).replace(" ", "-").lower()
    out = args.out or ROOT / "results" / f"vram-{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = sys.argv[1:] if argv is None else argv
    shown = [a for i, a in enumerate(argv) if a != "--out" and (i == 0 or argv[i - 1] != "--out")]
    receipt = {"command": " ".join(["python benchmarks/vram_benchmark.py", *shown]),
               "allocator_config": os.environ.get("PYTORCH_CUDA_ALLOC_CONF", ""),
               "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
               "total_memory_bytes": torch.cuda.get_device_properties(0).total_memory if device == "cuda" else None,
               "measurement": ("torch.cuda.max_memory_allocated over the training steps (every tensor, weights "
                               "included); device peak = max_memory_reserved + (used by the process − reserved)"
                               if device == "cuda" else "CPU SUBSTITUTE: the script's smoke test, no memory measured"),
               "versions": versions(), "steps": args.steps, "runs": []}
    if device == "cuda":
        receipt["nf4_check"] = nf4_check(device)
        print("NF4 by hand vs bitsandbytes on CUDA:", receipt["nf4_check"], flush=True)
    runs = plan(args)
    for i, (model_name, cfg) in enumerate(runs):
        if args.only is not None and i not in args.only:
            continue
        record = {"index": i, "model": model_name, **one_run(SHAPES.get(model_name, ModelShape(64, 128, 2, 4, 4, 256)),
                                                              cfg, device, args.steps)}
        if i in args.breakdown:
            try:
                record["memtracker"] = breakdown(SHAPES[model_name], cfg, device)
            except Exception as exc:
                record["memtracker"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        receipt["runs"].append(record)
        m = record["measured_peak_bytes"]
        print(f"{i:2d} {model_name:12s} {cfg.method:5s} {cfg.precision:5s} {record['recipe']:13s} b={cfg.batch_size} "
              f"s={cfg.seq_len:<4d} ckpt={cfg.gradient_checkpointing!s:5s} {cfg.attn_implementation:5s} "
              f"{cfg.optimizer:9s} predicted {record['predicted_peak_bytes'] / 1e9:7.3f} GB  measured "
              f"{record['measurement'] if m is None else f'{m / 1e9:7.3f} GB'}  "
              f"{'' if record.get('relative_error') is None else format(record['relative_error'], '+.1%')}", flush=True)
        out.write_text(json.dumps(receipt, indent=1) + "\n")  # after every run: nothing lost if one hangs
    out.write_text(json.dumps(receipt, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
