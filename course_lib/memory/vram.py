"""How much GPU memory fine-tuning needs, part by part and at its peak (lesson 04).

`estimate_memory(shape, config)` sizes each part — weights, gradients, optimizer states,
activations, quantization constants, LoRA parameters — and then finds the *peak*: the moment of a
training step when the most of them are alive together. In the steady state (step 2 on) that is
either the start of the backward pass (weights + optimizer states + every saved activation + the
loss's gradient buffers), a moment inside a checkpointed backward pass (one block recomputed), or
the optimizer step (weights + gradients + states + the optimizer's temporaries): gradients and
activations are never at their largest at the same time. Byte counts follow ZeRO §3.1
(mixed-precision Adam: 2 + 2 + 12 = 16 bytes per trainable parameter). Activations are counted per
tensor that transformers' LlamaDecoderLayer saves for the backward pass (see `activation_bytes`),
checked against PyTorch's MemTracker (`course_lib.memory.memtrack`, benchmarks/vram_memtrack.py) and measured
on a GPU (benchmarks/vram_benchmark.py; benchmarks/results/vram-nvidia-h200.json: 37 runs within ±5 %).
LoRA and QLoRA follow peft's defaults unless told otherwise: fp32 adapters (`autocast_adapter_dtype`)
and, for QLoRA, fp32 embeddings and norms (`prepare_model_for_kbit_training`); AdamW is torch's
multi-tensor version, its CUDA default (`foreach`).
What a GPU adds on top of tensors (CUDA context, allocator rounding) is a separate line.
`course vram` (course_lib.commands.vram) prints the table or `--json`; `--check` measures the same job with the tracker.

Across GPUs, `course vram --num-gpus N --zero-stage S` prints `course_lib.memory.zero`'s model states per GPU
with the per-GPU activations and overhead (lesson 08).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple, Sequence

from course_lib.tuning.lora import ALL_LINEAR_TARGETS, ATTENTION_TARGETS

__all__ = ["ModelShape", "PRESETS", "VramConfig", "MemoryEstimate", "estimate_memory", "model_shape", "shape_of",
           "METHODS", "PRECISIONS", "OPTIMIZERS", "PARTS", "Activations", "activation_bytes"]

METHODS = ("full", "lora", "qlora")
PRECISIONS = ("fp32", "fp16", "bf16", "mixed")
OPTIMIZERS = ("adamw", "adamw-8bit", "paged-adamw-8bit", "sgd")
PARTS = ("weights", "quantization_constants", "lora_parameters", "gradients", "optimizer_states", "activations",
         "temporaries")


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

    def lora_parameters(self, r: int, targets: Sequence[str] = ATTENTION_TARGETS) -> int:
        """Trainable LoRA parameters of the whole model: r·(d + k) per targeted matrix per layer (lesson 03)."""
        return self.num_hidden_layers * sum(r * (d + k) for name, (d, k) in self.linear_shapes().items()
                                            if name in targets)


PRESETS: dict[str, ModelShape] = {  # the published config.json of each model
    "llama-3.2-1b": ModelShape(2048, 8192, 16, 32, 8, 128256, tie_word_embeddings=True),
    "llama-2-7b": ModelShape(4096, 11008, 32, 32, 32, 32000),
    "llama-2-13b": ModelShape(5120, 13824, 40, 40, 40, 32000),
    "llama-2-70b": ModelShape(8192, 28672, 80, 64, 8, 32000),
    "course-tiny": ModelShape(128, 384, 4, 4, 4, 4096, tie_word_embeddings=True),
    "smollm2-135m": ModelShape(576, 1536, 30, 9, 3, 49152, tie_word_embeddings=True),
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
        return shape_of(cfg)
    except KeyError as exc:
        raise ValueError(f"the config.json of {name!r} has no {exc.args[0]!r}: only Llama-style decoders "
                         "are supported") from None


def shape_of(config) -> ModelShape:
    """The ModelShape of a transformers config (a `PretrainedConfig` or its config.json as a dict)."""
    cfg = config if isinstance(config, dict) else config.to_dict()
    return ModelShape(cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"],
                      cfg["num_attention_heads"], cfg.get("num_key_value_heads") or cfg["num_attention_heads"],
                      cfg["vocab_size"], bool(cfg.get("tie_word_embeddings", False)))


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
    attn_implementation: Literal["sdpa", "eager"] = field(
        default="sdpa", metadata={"help": "sdpa (FlashAttention-style kernels: no s×s scores kept) or eager "
                                          "(stores the softmax scores)"})
    lora_targets: Literal["all-linear", "attention"] = field(
        default="all-linear", metadata={"help": "attention means q, k, v, o only"})
    double_quant: bool = field(default=True, metadata={"help": "QLoRA: 8-bit absmax constants (0.127 instead "
                                                               "of 0.5 bit per parameter)"})
    autocast_adapter_dtype: bool = field(default=True, metadata={"help": "peft's default (get_peft_model): LoRA "
                                                                         "adapters of a 16-bit model kept in fp32"})
    prepare_model_for_kbit_training: bool = field(default=True, metadata={"help": "QLoRA: peft's recipe, which "
                                                                                  "casts embeddings and norms to fp32"})
    foreach: bool = field(default=True, metadata={"help": "torch's AdamW updates every tensor at once (its CUDA "
                                                          "default), holding a copy of all second moments"})
    overhead_bytes: int = field(default=1 << 30, metadata={"help": "CUDA context, cuBLAS workspace, allocator "
                                                                   "slack: an assumption, about 1 GiB"})

    def validate(self) -> None:
        for name, value, allowed in (("method", self.method, METHODS), ("precision", self.precision, PRECISIONS),
                                     ("optimizer", self.optimizer, OPTIMIZERS),
                                     ("lora_targets", self.lora_targets, ("all-linear", "attention")),
                                     ("attn_implementation", self.attn_implementation, ("sdpa", "eager"))):
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}: choose one of {', '.join(allowed)}")
        for name in ("batch_size", "seq_len", "lora_r"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

    @property
    def fp32_adapters(self) -> bool:
        """LoRA adapters (and their gradients and AdamW states) in fp32 on a 16-bit model: peft's defaults."""
        return self.method != "full" and self.precision in ("fp16", "bf16") and (
            self.autocast_adapter_dtype or self.prepared_4bit)

    @property
    def prepared_4bit(self) -> bool:
        """QLoRA through prepare_model_for_kbit_training: the 16-bit rest of the model (embeddings, norms) in fp32."""
        return self.method == "qlora" and self.prepare_model_for_kbit_training and self.precision in ("fp16", "bf16")


@dataclass
class MemoryEstimate:
    """Bytes of each part, the tensor peak and when it happens; `.table()` for a person, `.to_json()` for a program.

    The parts are sizes, not a sum: `peak` counts only what is alive at the peak `phase`, and
    `total` adds the GPU's own `overhead` (not tensors) to it.
    """

    weights: int
    quantization_constants: int
    lora_parameters: int
    gradients: int
    optimizer_states: int
    activations: int  # saved for the backward pass, at the end of the forward pass
    temporaries: int  # short-lived buffers at the peak: loss gradients, optimizer scratch
    peak: int  # tensor bytes alive at once, at `phase`
    phase: str
    overhead: int  # CUDA context, allocator rounding and workspaces: GPU-only, not tensors
    trainable_parameters: int
    total_parameters: int

    @property
    def total(self) -> int:
        """What a GPU needs: the tensor peak plus the overhead."""
        return self.peak + self.overhead

    def to_json(self) -> dict:
        out = {f"{p}_bytes": getattr(self, p) for p in PARTS}
        out.update(peak_bytes=self.peak, peak_phase=self.phase, overhead_bytes=self.overhead,
                   total_bytes=self.total, trainable_parameters=self.trainable_parameters,
                   total_parameters=self.total_parameters)
        return out

    def table(self, title: str = "") -> str:
        lines = [title] if title else []
        lines += [f"  {p.replace('_', ' '):24s}{getattr(self, p) / 1e9:10.2f} GB" for p in PARTS]
        lines.append(f"  {'tensor peak':24s}{self.peak / 1e9:10.2f} GB   at {self.phase}")
        lines.append(f"  {'+ GPU overhead':24s}{self.overhead / 1e9:10.2f} GB   CUDA context, allocator rounding, "
                     "workspaces (assumed; not tensors)")
        lines.append(f"  {'total on a GPU':24s}{self.total / 1e9:10.2f} GB   ({self.total / 2**30:.2f} GiB)")
        return "\n".join(lines)


# Bytes each LlamaDecoderLayer saves for backward, per token, in multiples of h (hidden size), kv (the
# key/value width) and i (MLP width), counted with MemTracker on transformers 5.24's Llama (2 and 4
# layers; course_lib/memory/memtrack.py). In 16-bit, full fine-tuning: each RMSNorm keeps its fp32 input (4h) and
# its 16-bit output before and after the weight (2h + 2h); attention keeps q and the output (2h each),
# k and v (2kv each); the SwiGLU MLP keeps gate, up, SiLU(gate) and their product (4 × 2i). LoRA on frozen
# weights drops what only a weight gradient needs. fp32 doubles the 16-bit tensors; mixed precision
# (autocast) keeps the norms and residual path in fp32.
_PER_TOKEN = {  # (h, kv, i) coefficients in bytes
    ("16-bit", "full"): (20, 4, 8), ("16-bit", "all-linear"): (18, 4, 8), ("16-bit", "attention"): (16, 4, 6),
    ("fp32", "full"): (34, 8, 16), ("fp32", "all-linear"): (32, 8, 16), ("fp32", "attention"): (30, 8, 12),
    ("mixed", "full"): (31, 4, 8), ("mixed", "all-linear"): (29, 4, 8), ("mixed", "attention"): (27, 4, 6),
}


# What peft's defaults add per token and decoder block on a 16-bit model, in multiples of h, i and the rank
# r, counted with MemTracker on peft 0.21's LoRA layers (2- and 4-layer Llamas, several h and i;
# benchmarks/results/vram-nvidia-h200.json checks them on a GPU): fp32 adapters cast each adapted layer's
# input to fp32 and keep it; prepare_model_for_kbit_training's fp32 norms make the residual stream fp32.
_FP32_ADAPTERS = {("lora", "all-linear"): (20, 2, 14), ("lora", "attention"): (14, 0, 8),
                  ("qlora-prepared", "all-linear"): (12, 8, 14), ("qlora-prepared", "attention"): (10, 6, 8)}


class Activations(NamedTuple):
    """Activation bytes of one training step (`activation_bytes`)."""

    saved: int  # alive at the end of the forward pass, kept for backward
    block: int  # one decoder block's full activations (what checkpointing recomputes)
    logits: int  # the fp32 logits the loss keeps (part of `saved`)
    loss_buffers: int  # fp32 gradient of the logits and its softmax, at the start of backward


def activation_bytes(s: ModelShape, c: VramConfig) -> Activations:
    """What a training step of `s` under `c` keeps for the backward pass, in bytes (lesson 04)."""
    tokens, h, a = c.batch_size * c.seq_len, s.hidden_size, s.num_attention_heads
    kv = h // a * s.num_key_value_heads
    kind = "fp32" if c.precision == "fp32" else "mixed" if c.precision == "mixed" else "16-bit"
    what = "full" if c.method == "full" else c.lora_targets
    ch, ckv, ci = _PER_TOKEN[(kind, what)]
    scores = c.batch_size * a * c.seq_len * c.seq_len
    if c.attn_implementation == "eager":
        attention = scores * (4 + (4 if kind == "fp32" else 2))  # fp32 softmax + its cast
    elif c.prepared_4bit and s.num_key_value_heads < a:  # fp32 grouped-query attention: measured on CUDA to keep
        attention = 4 * scores  # its fp32 probabilities (flash attention needs 16-bit inputs)
    else:
        attention = 4 * c.batch_size * a * c.seq_len  # sdpa: the log-sum-exp of each row
    block = tokens * (ch * h + ckv * kv + ci * s.intermediate_size + 8) + attention  # + two fp32 rsqrt
    logits = 4 * tokens * s.vocab_size  # fp32 logits kept by the loss
    e = 4 if kind == "fp32" else 2
    head = logits + (5 * e * tokens * h if c.method == "full" else 0)  # final norm and embeddings, when trained
    layer_input = e * tokens * h  # what a checkpointed block keeps
    if c.fp32_adapters:  # fp32 copies of each adapted layer's input and the adapters' fp32 outputs
        eh, ei, er = _FP32_ADAPTERS[("qlora-prepared" if c.prepared_4bit else "lora", c.lora_targets)]
        block += tokens * (eh * h + ei * s.intermediate_size + er * c.lora_r)
    if c.prepared_4bit:  # fp32 embeddings and norms: the residual stream between blocks is fp32
        layer_input += 2 * tokens * h
        head += (5 if c.gradient_checkpointing else 1) * tokens * h // 2
    if c.gradient_checkpointing:  # each block keeps only its input; one block is recomputed at a time
        saved = s.num_hidden_layers * layer_input + head
    else:
        saved = s.num_hidden_layers * block + head
    return Activations(int(saved), int(block), logits, 8 * tokens * s.vocab_size)


def estimate_memory(shape: ModelShape, config: VramConfig | None = None) -> MemoryEstimate:
    """Training memory of `shape` under `config`: each part, and the peak of a steady-state step (lesson 04)."""
    config = config or VramConfig()
    config.validate()
    c, n = config, shape.parameters
    half = 4 if c.precision == "fp32" else 2  # bytes of a weight / gradient in the working precision
    if c.method == "full":
        trainable = n
        largest = max(shape.vocab_size, shape.intermediate_size) * shape.hidden_size  # biggest trained tensor
    else:
        trainable = shape.lora_parameters(c.lora_r, ALL_LINEAR_TARGETS if c.lora_targets == "all-linear" else ATTENTION_TARGETS)
        largest = c.lora_r * max(shape.intermediate_size, shape.hidden_size)
    # frozen or trainable base weights; QLoRA keeps the decoder's linear layers in 4 bits
    if c.method == "qlora":
        weights = shape.linear_parameters // 2 + shape.other_parameters * (4 if c.prepared_4bit else half)
        blocks = shape.linear_parameters / 64
        quant = int(blocks * 1 + blocks / 256 * 4) if c.double_quant else int(blocks * 4)
    else:
        weights, quant = n * half, 0
    trained = 4 if c.fp32_adapters else half  # bytes of a trainable parameter and of its gradient
    lora_bytes = trainable * trained if c.method != "full" else 0
    gradients = trainable * trained
    state = {"adamw": 8 if c.precision in ("fp32", "mixed") else 2 * trained,  # m and v in the parameter's dtype
             "adamw-8bit": 2, "paged-adamw-8bit": 2, "sgd": 0}[c.optimizer]
    master = 4 if c.precision == "mixed" else 0  # fp32 copy of each trainable weight (ZeRO counts it here)
    optimizer = trainable * (state + master)
    act = activation_bytes(shape, c)
    static = int(weights) + quant + lora_bytes + optimizer  # alive all step long, from step 2 on
    if c.optimizer == "adamw" and c.foreach:  # torch's multi-tensor AdamW takes the square root of every
        step_scratch = trainable * state // 2  # second moment at once: one more copy of them all
    else:  # one tensor at a time: two scratch copies of the largest (sqrt, then the step)
        step_scratch = 2 * largest * (state // 2 if state else 0)
    moments = {  # moment -> (tensor bytes alive, of which short-lived temporaries)
        "the start of the backward pass": (static + act.saved + act.loss_buffers, act.loss_buffers),
        "the optimizer step": (static + gradients + step_scratch, step_scratch)}
    if c.gradient_checkpointing:  # late in backward: nearly every gradient, one block recomputed, its buffers;
        # the logits and their gradient are gone by then
        block_buffers = 4 * half * c.batch_size * c.seq_len * shape.hidden_size
        moments["a recomputed block in the backward pass"] = (
            static + gradients + act.saved - act.logits + act.block + block_buffers, block_buffers)
    phase, (peak, temporaries) = max(moments.items(), key=lambda kv: kv[1][0])
    return MemoryEstimate(weights=int(weights), quantization_constants=quant, lora_parameters=lora_bytes,
                          gradients=gradients, optimizer_states=optimizer, activations=act.saved,
                          temporaries=temporaries, peak=int(peak), phase=phase, overhead=c.overhead_bytes,
                          trainable_parameters=trainable, total_parameters=n)
