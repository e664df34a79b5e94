"""`course memory`: full fine-tuning, 16-bit LoRA and QLoRA of a real model, measured on the CPU (lesson 04).

Each method runs in its own fresh Python process (so one run's freed memory cannot hide the next
one's peak): load the model, then a few AdamW steps on fixed-length batches. Recorded per method:
the model's footprint (parameter and buffer bytes, by dtype), the process's resident memory (RSS)
above what it was before loading — after loading, and at its peak while loading and while training
— and what `course vram` (course_lib.memory.vram.estimate_memory) predicts for the same shape and set-up.

The same steps are then repeated under PyTorch's MemTracker, which counts the tensors alive at the
peak exactly, by category. What a CPU measurement says: the tensor bytes are what the same shapes
and dtypes allocate on a GPU too; RSS counts every byte the process touched and kept — freed
temporaries such as bitsandbytes' dequantized copies of 4-bit weights that the allocator has not
given back, Python objects — so it is an upper bound. It says nothing about a GPU's own overhead
(CUDA context, caching allocator; `course vram` adds it on a separate line).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field

import torch

from course_lib.memory.memtrack import RssSampler, release_freed_memory, track_model_steps
from course_lib.memory.quant import keep_cpu_4bit_trainable
from course_lib.memory.vram import METHODS, ModelShape, VramConfig, estimate_memory, model_shape
from course_lib.models.base import model_name, set_seed, set_threads
from course_lib.models.loading import load_base_model, resolve_model
from course_lib.notebook import known_notices
from course_lib.results import command_line, save_results

__all__ = ["MemoryConfig", "build_model", "measure_method", "memory_comparison", "COMMANDS"]

@dataclass
class MemoryConfig:
    """What `course memory` measures: each method, a few training steps, one process each."""

    model: str = field(default="smollm2-135m-instruct", metadata={"help": "a named model, folder or hub id"})
    methods: list[str] = field(default_factory=lambda: list(METHODS), metadata={"help": "full, lora, qlora"})
    max_steps: int = field(default=3, metadata={"help": "optimizer steps (the peak is reached from step 2 on)"})
    per_device_train_batch_size: int = field(default=4, metadata={"help": "sequences per step"})
    seq_len: int = field(default=256, metadata={"help": "tokens per sequence (random ids: memory needs shapes)"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank, all linear layers, lora_alpha = 2r"})
    out: str = field(default="", metadata={"help": "output file; '' means data/results/memory_smollm2.json"})


def build_model(name: str | None, method: str, lora_r: int = 16, lora_alpha: int | None = None,
                prepare: bool = True, device: torch.device | None = None, autocast_adapter_dtype: bool = True):
    """The model `method` trains, in the course's recipe: bf16 weights; LoRA/QLoRA on all linear layers (peft).

    QLoRA (lesson 04): NF4 with double quantization and bf16 compute, then peft's
    `prepare_model_for_kbit_training` (freeze, cast the unquantized parameters to float32), unless
    `prepare=False` (frozen, left in bf16). `lora_alpha` defaults to 2·r; on a CUDA `device` the model is
    placed there, and `autocast_adapter_dtype=False` keeps peft's adapters in the base dtype.
    """
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training  # heavy: only when a model is built
    from transformers import BitsAndBytesConfig

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    lora = LoraConfig(r=lora_r, lora_alpha=lora_alpha or 2 * lora_r, target_modules="all-linear",
                      task_type="CAUSAL_LM")
    if method in ("full", "lora"):
        model = load_base_model(name, dtype=torch.bfloat16)
        model = model.to(device) if device is not None else model
        return model if method == "full" else get_peft_model(model, lora, autocast_adapter_dtype=autocast_adapter_dtype)
    bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                             bnb_4bit_compute_dtype=torch.bfloat16)
    placed = {"device_map": {"": 0}} if device is not None and device.type == "cuda" else {}
    model = load_base_model(name, quantization_config=bnb, **({} if prepare else {"dtype": torch.bfloat16}), **placed)
    with known_notices():  # peft still calls a transformers 5 alias deprecated for v6; harmless
        if prepare:  # the recipe: freeze, and cast the unquantized parameters to float32
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        else:
            model.requires_grad_(False)
        keep_cpu_4bit_trainable(model)  # without it, evaluating first breaks training on a CPU (lesson 04)
        return get_peft_model(model, lora, autocast_adapter_dtype=autocast_adapter_dtype)


def bytes_by_dtype(model: torch.nn.Module) -> dict[str, int]:
    """Parameter and buffer bytes per storage dtype (4-bit weights are uint8, two codes per byte)."""
    out: dict[str, int] = {}
    for t in list(model.parameters()) + list(model.buffers()):
        key = str(t.dtype).removeprefix("torch.")
        out[key] = out.get(key, 0) + t.nbytes
    return out


def vram_config(config: MemoryConfig, method: str) -> VramConfig:
    """The same set-up as `course vram` sees it."""
    return VramConfig(method=method, precision="bf16", optimizer="adamw", batch_size=config.per_device_train_batch_size,
                      seq_len=config.seq_len, lora_r=config.lora_r, lora_targets="all-linear")


def measure_method(config: MemoryConfig, method: str) -> dict:
    """Load and train one method in this process; bytes are RSS increases over the process before loading."""
    import gc

    set_threads()
    _train(build_model("course-tiny", method, config.lora_r), MemoryConfig(max_steps=1, seq_len=16))  # warm-up:
    # the libraries' code and first-call buffers are loaded here, so what follows counts the model and its training
    set_seed(0)
    gc.collect()
    release_freed_memory()
    base = RssSampler.rss()
    start = time.perf_counter()
    with RssSampler() as load:
        model = build_model(config.model, method, config.lora_r)
    gc.collect()
    release_freed_memory()
    after_load = RssSampler.rss()
    footprint = bytes_by_dtype(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    with RssSampler() as training:
        step_seconds = _train(model, config)
    # the same steps again under PyTorch's MemTracker: exact tensor bytes, by category (no RSS overheads)
    ids = torch.randint(0, model.config.vocab_size, (config.per_device_train_batch_size, config.seq_len),
                        generator=torch.Generator().manual_seed(0))
    tracked = track_model_steps(model, ids, steps=2)
    return {"method": method, "footprint_bytes": sum(footprint.values()), "footprint_by_dtype": footprint,
            "trainable_parameters": sum(p.numel() for p in trainable),
            "trainable_bytes": sum(p.nbytes for p in trainable),
            "load_peak_bytes": load.peak - base, "after_load_bytes": after_load - base,
            "train_peak_bytes": training.peak - base, "step_seconds": step_seconds,
            "tracked_peak_bytes": tracked.peak, "tracked_by_category": tracked.by_category,
            "seconds": time.perf_counter() - start}


def _train(model: torch.nn.Module, config: MemoryConfig) -> list[float]:
    """config.max_steps AdamW steps on random token ids of a fixed shape; the seconds of each step."""
    gen = torch.Generator().manual_seed(0)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    model.train()
    seconds = []
    for _ in range(config.max_steps):
        ids = torch.randint(0, model.config.vocab_size, (config.per_device_train_batch_size, config.seq_len),
                            generator=gen)
        start = time.perf_counter()
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        seconds.append(time.perf_counter() - start)
    return seconds


def _isolated(config: MemoryConfig, method: str) -> dict:
    """measure_method in a fresh `python -m course_lib.experiments.memory` process; its last line is JSON."""
    done = subprocess.run([sys.executable, "-m", "course_lib.experiments.memory", json.dumps(asdict(config)), method],
                          capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"measuring {method!r} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def memory_comparison(config: MemoryConfig, shape: ModelShape | None = None) -> dict:
    """Every method measured in its own process, next to `course vram`'s prediction for the same shape."""
    shape = shape or model_shape(resolve_model(config.model))
    runs = []
    for method in config.methods:
        measured = _isolated(config, method)
        est = estimate_memory(shape, vram_config(config, method))
        measured["predicted"] = {"weights_bytes": est.weights + est.quantization_constants + est.lora_parameters,
                                 "peak_bytes": est.peak, "phase": est.phase}
        measured["footprint_error"] = measured["footprint_bytes"] / measured["predicted"]["weights_bytes"] - 1
        measured["peak_error"] = measured["train_peak_bytes"] / est.peak - 1  # RSS against the tensor estimate
        measured["tracked_error"] = est.peak / measured["tracked_peak_bytes"] - 1  # the estimate against tensors
        runs.append(measured)
        print(f"{method:5s} footprint {measured['footprint_bytes'] / 1e6:7.1f} MB "
              f"(predicted {measured['predicted']['weights_bytes'] / 1e6:7.1f}); training peak "
              f"{measured['train_peak_bytes'] / 1e6:7.1f} MB RSS, {measured['tracked_peak_bytes'] / 1e6:7.1f} MB tensors "
              f"(predicted {est.peak / 1e6:7.1f}, {measured['tracked_error']:+.0%} off the tensors); loading peak "
              f"{measured['load_peak_bytes'] / 1e6:7.1f} MB", flush=True)
    return {"config": asdict(config), "shape": asdict(shape), "runs": runs,
            "measurement": "CPU, one thread; RSS increase over the fresh process before loading, sampled every ms"}


def _run(config: MemoryConfig) -> int:
    payload = {"model": model_name(config.model), "command": command_line("memory", config), **memory_comparison(config)}
    path = save_results("memory_smollm2", payload, out=config.out or None)
    print(f"wrote {path}")
    return 0


COMMANDS = {
    "memory": ("full fine-tuning vs 16-bit LoRA vs QLoRA: footprint and peak memory on the CPU next to `course "
               "vram` (lesson 04; several minutes)", (MemoryConfig,), _run),
}

if __name__ == "__main__":  # one method in this fresh process (memory_comparison's child)
    print(json.dumps(measure_method(MemoryConfig(**json.loads(sys.argv[1])), sys.argv[2])))
