"""How much GPU memory fine-tuning needs, part by part, and how to measure it (lesson 04).

`estimate_memory(shape, config)` adds up weights, gradients, optimizer states, activations,
quantization constants, LoRA parameters and a fixed framework overhead, for full fine-tuning,
LoRA and QLoRA. Byte counts follow ZeRO §3.1 (mixed-precision Adam: 2 + 2 + 12 = 16 bytes per
trainable parameter) and Korthikanti et al. 2022 (activations s·b·h·(34 + 5·a·s/h) bytes per layer
in 16-bit; ≈2·s·b·h with full recomputation). `course vram` prints the table or `--json`.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Literal, Sequence

__all__ = ["ModelShape", "PRESETS", "VramConfig", "MemoryEstimate", "estimate_memory", "model_shape",
           "measure_peak_memory", "PeakMemory", "METHODS", "PRECISIONS", "OPTIMIZERS", "PARTS", "ATTENTION",
           "ALL_LINEAR", "VramArgs", "COMMANDS"]

METHODS = ("full", "lora", "qlora")
PRECISIONS = ("fp32", "fp16", "bf16", "mixed")
OPTIMIZERS = ("adamw", "adamw-8bit", "paged-adamw-8bit", "sgd")
ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
ALL_LINEAR = ATTENTION + ("gate_proj", "up_proj", "down_proj")
PARTS = ("weights", "gradients", "optimizer_states", "activations", "quantization_constants", "lora_parameters",
         "overhead")


@dataclass(frozen=True)
class ModelShape:
    """The numbers of a Llama-style decoder that memory depends on (as in a transformers config.json)."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    vocab_size: int
    tie_word_embeddings: bool = False

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(out, in) of each linear layer in one decoder block, by peft's module names."""
        h, kv = self.hidden_size, self.hidden_size // self.num_attention_heads * self.num_key_value_heads
        i = self.intermediate_size
        return {"q_proj": (h, h), "k_proj": (kv, h), "v_proj": (kv, h), "o_proj": (h, h),
                "gate_proj": (i, h), "up_proj": (i, h), "down_proj": (h, i)}

    @property
    def linear_parameters(self) -> int:
        """Parameters in the decoder blocks' linear layers: what QLoRA stores in 4 bits."""
        return self.num_hidden_layers * sum(d * k for d, k in self.linear_shapes().values())

    @property
    def other_parameters(self) -> int:
        """Embeddings, LM head (unless tied) and RMSNorm weights: kept in 16 bits by QLoRA."""
        h = self.hidden_size
        embed = self.vocab_size * h * (1 if self.tie_word_embeddings else 2)
        return embed + (2 * self.num_hidden_layers + 1) * h

    @property
    def parameters(self) -> int:
        return self.linear_parameters + self.other_parameters

    def lora_parameters(self, r: int, targets: Sequence[str] = ATTENTION) -> int:
        """Trainable LoRA parameters of the whole model: r·(d + k) per targeted matrix per layer (lesson 03)."""
        return self.num_hidden_layers * sum(r * (d + k) for name, (d, k) in self.linear_shapes().items()
                                            if name in targets)


PRESETS: dict[str, ModelShape] = {  # the published config.json of each model
    "llama-2-7b": ModelShape(4096, 11008, 32, 32, 32, 32000),
    "llama-2-13b": ModelShape(5120, 13824, 40, 40, 40, 32000),
    "llama-2-70b": ModelShape(8192, 28672, 80, 64, 8, 32000),
    "course-tiny": ModelShape(128, 384, 4, 4, 4, 4096, tie_word_embeddings=True),
}


def model_shape(name: str) -> ModelShape:
    """A preset, a local folder with config.json, or a hub id already in the local cache (never downloads)."""
    if name in PRESETS:
        return PRESETS[name]
    path = Path(name)
    if (path / "config.json").is_file():
        cfg = json.loads((path / "config.json").read_text())
    else:
        try:
            from huggingface_hub import hf_hub_download
            cfg = json.loads(Path(hf_hub_download(name, "config.json", local_files_only=True)).read_text())
        except Exception:
            raise ValueError(f"unknown model {name!r}: not one of {sorted(PRESETS)}, not a folder with a "
                             "config.json, and not in the local Hugging Face cache") from None
    try:
        return ModelShape(cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"],
                          cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"]),
                          cfg["vocab_size"], bool(cfg.get("tie_word_embeddings", False)))
    except KeyError as exc:
        raise ValueError(f"the config.json of {name!r} has no {exc.args[0]!r}: only Llama-style decoders "
                         "are supported") from None


@dataclass
class VramConfig:
    """One training set-up to estimate (names as in the `course vram` options)."""

    method: Literal["full", "lora", "qlora"] = field(default="lora", metadata={"help": "what trains"})
    precision: Literal["fp32", "fp16", "bf16", "mixed"] = field(
        default="bf16", metadata={"help": "fp32, pure 16-bit, or mixed (16-bit compute, fp32 master weights)"})
    optimizer: Literal["adamw", "adamw-8bit", "paged-adamw-8bit", "sgd"] = field(
        default="adamw", metadata={"help": "sgd means no momentum: no optimizer state"})
    batch_size: int = field(default=1, metadata={"help": "sequences per step (activations grow linearly)"})
    seq_len: int = field(default=512, metadata={"help": "tokens per sequence"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "keep only each layer's input, "
                                                                          "recompute the rest"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank (lora and qlora)"})
    lora_targets: Literal["all-linear", "attention"] = field(
        default="all-linear", metadata={"help": "attention means q, k, v, o only"})
    double_quant: bool = field(default=True, metadata={"help": "QLoRA: 8-bit absmax constants (0.127 instead "
                                                               "of 0.5 bit per parameter)"})
    overhead_bytes: int = field(default=1 << 30, metadata={"help": "CUDA context, cuBLAS workspace, allocator "
                                                                   "slack: an assumption, about 1 GiB"})

    def validate(self) -> None:
        for name, value, allowed in (("method", self.method, METHODS), ("precision", self.precision, PRECISIONS),
                                     ("optimizer", self.optimizer, OPTIMIZERS),
                                     ("lora_targets", self.lora_targets, ("all-linear", "attention"))):
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}: choose one of {', '.join(allowed)}")
        for name in ("batch_size", "seq_len", "lora_r"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")


@dataclass
class MemoryEstimate:
    """Bytes per part and in total; `.table()` formats it for a person, `.to_json()` for a program."""

    weights: int
    gradients: int
    optimizer_states: int
    activations: int
    quantization_constants: int
    lora_parameters: int
    overhead: int
    trainable_parameters: int
    total_parameters: int

    @property
    def total(self) -> int:
        return sum(getattr(self, p) for p in PARTS)

    def to_json(self) -> dict:
        out = {f"{p}_bytes": getattr(self, p) for p in PARTS}
        out.update(total_bytes=self.total, trainable_parameters=self.trainable_parameters,
                   total_parameters=self.total_parameters)
        return out

    def table(self, title: str = "") -> str:
        lines = [title] if title else []
        lines += [f"  {p.replace('_', ' '):24s}{getattr(self, p) / 1e9:10.2f} GB" for p in PARTS]
        lines.append(f"  {'total':24s}{self.total / 1e9:10.2f} GB   ({self.total / 2**30:.2f} GiB)")
        return "\n".join(lines)


def _activation_bytes(s: ModelShape, c: VramConfig) -> int:
    """Korthikanti et al. 2022 per layer (16-bit), plus the logits and their fp32 copies for the loss."""
    b, seq, h, a, layers = c.batch_size, c.seq_len, s.hidden_size, s.num_attention_heads, s.num_hidden_layers
    scale = 2 if c.precision == "fp32" else 1  # the formula counts 2-byte values
    per_layer = seq * b * h * (34 + 5 * a * seq / h)  # everything a layer saves for backward
    if c.gradient_checkpointing:  # each layer's input (2·s·b·h) + one layer recomputed at a time
        body = layers * 2 * seq * b * h + per_layer
    else:
        body = layers * per_layer
    logits = seq * b * s.vocab_size * (2 * scale + 4 + 4)  # logits, fp32 upcast, its gradient
    return int(body * scale + logits)


def estimate_memory(shape: ModelShape, config: VramConfig | None = None) -> MemoryEstimate:
    """Training memory of `shape` under `config`, part by part in bytes (lesson 04)."""
    config = config or VramConfig()
    config.validate()
    c, n = config, shape.parameters
    half = 4 if c.precision == "fp32" else 2  # bytes of a weight / gradient in the working precision
    if c.method == "full":
        trainable = n
    else:
        trainable = shape.lora_parameters(c.lora_r, ALL_LINEAR if c.lora_targets == "all-linear" else ATTENTION)
    # frozen or trainable base weights; QLoRA keeps the decoder's linear layers in 4 bits
    if c.method == "qlora":
        weights = shape.linear_parameters // 2 + shape.other_parameters * half
        blocks = shape.linear_parameters / 64
        quant = int(blocks * 1 + blocks / 256 * 4) if c.double_quant else int(blocks * 4)
    else:
        weights, quant = n * half, 0
    lora_bytes = trainable * half if c.method != "full" else 0
    gradients = trainable * half
    state = {"adamw": 8 if c.precision in ("fp32", "mixed") else 2 * half,  # m and v; torch keeps them in the param dtype
             "adamw-8bit": 2, "paged-adamw-8bit": 2, "sgd": 0}[c.optimizer]
    master = 4 if c.precision == "mixed" else 0  # fp32 copy of each trainable weight (ZeRO counts it here)
    optimizer = trainable * (state + master)
    return MemoryEstimate(weights=int(weights), gradients=gradients, optimizer_states=optimizer,
                          activations=_activation_bytes(shape, c), quantization_constants=quant,
                          lora_parameters=lora_bytes, overhead=c.overhead_bytes,
                          trainable_parameters=trainable, total_parameters=n)


# ---------------------------------------------------------------- measuring

@dataclass
class PeakMemory:
    """A measured peak and how it was measured (the CPU number is a substitute, not GPU memory)."""

    peak_bytes: int
    method: str  # "cuda.max_memory_allocated" or "cpu: peak RSS increase (substitute)"


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _release_freed_memory() -> None:
    """Ask glibc to give freed heap memory back to the OS (no-op elsewhere), so RSS starts from what is in use."""
    import ctypes
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def measure_peak_memory(fn: Callable[[], object], device: str | None = None) -> PeakMemory:
    """Run fn() once and return its peak memory: exact tensor bytes on CUDA, an RSS substitute on CPU."""
    import torch
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return PeakMemory(torch.cuda.max_memory_allocated(), "cuda.max_memory_allocated")
    if not os.path.exists("/proc/self/statm"):
        raise ValueError("measuring CPU memory needs Linux's /proc/self/statm; run on Linux or on a CUDA GPU")
    # CPU substitute: the process's resident memory, sampled every millisecond while fn runs, minus
    # what it was before. Large tensors are mmapped and given back when freed, so this tracks them;
    # it also counts Python objects and allocator caches, so read it as an upper bound.
    import gc
    gc.collect()
    _release_freed_memory()  # else memory freed by an earlier run is reused unseen and the increase reads ≈ 0
    base, peak, done = _rss_bytes(), [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.001)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        fn()
    finally:
        done.set()
        thread.join()
    peak[0] = max(peak[0], _rss_bytes())
    return PeakMemory(max(peak[0] - base, 0), "cpu: peak RSS increase (substitute)")


# ---------------------------------------------------------------- `course vram`

@dataclass
class VramArgs:
    """What to estimate and how to print it."""

    model: str = field(default="llama-2-7b", metadata={"help": f"{', '.join(PRESETS)}, a folder with a "
                                                              "config.json, or a hub id in the local cache"})
    json: bool = field(default=False, metadata={"help": "print machine-readable JSON"})


def _vram(args: VramArgs, config: VramConfig) -> int:
    est = estimate_memory(model_shape(args.model), config)
    if args.json:
        print(json.dumps({"model": args.model, "config": asdict(config), **est.to_json()}, indent=1))
    else:
        gc = ", gradient checkpointing" if config.gradient_checkpointing else ""
        print(est.table(f"{args.model}: {config.method}, {config.precision}, {config.optimizer}, batch "
                        f"{config.batch_size} × {config.seq_len} tokens{gc}"))
        print(f"  trainable parameters: {est.trainable_parameters:,} of {est.total_parameters:,}")
    return 0


COMMANDS = {
    "vram": ("estimate training memory part by part (weights, gradients, optimizer, activations, ...); lesson 04",
             (VramArgs, VramConfig), _vram),
}
