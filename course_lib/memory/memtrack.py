"""Training memory measured without the memory: PyTorch's MemTracker under fake tensors (lesson 04).

`track_training_step(shape, config)` builds a Llama of that shape inside `FakeTensorMode` (no
tensor is allocated, so a 13B model "fits" on a laptop), runs two training steps under
`torch.distributed._tools.mem_tracker.MemTracker`, and returns the peak and its split into
parameters, gradients, optimizer states, activations and temporaries. Two steps, because the
optimizer's states only exist from the first step on: the second step is the steady state a
real run lives in. This is the measurement `course vram --check` and
benchmarks/vram_memtrack.py compare the estimate with; `measure_peak_memory` (below) measures a real
run instead (lesson 04 uses it on a GPU; benchmarks/vram_benchmark.py is the GPU receipt).

What it cannot see: 4-bit layers (bitsandbytes kernels do not run on fake tensors), the CUDA
context, and the caching allocator's rounding and fragmentation (`course vram` lists those on a
separate line).
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable

import torch

from course_lib.tuning.lora import ALL_LINEAR_TARGETS, ATTENTION_TARGETS, LoraConfig, LinearWithLoRA, add_lora
from course_lib.memory.vram import ModelShape, VramConfig

__all__ = ["TrackedMemory", "track_training_step", "track_model_steps", "PeakMemory", "measure_peak_memory", "RssSampler",
           "release_freed_memory"]

_CATEGORIES = {"PARAM": "parameters", "BUFFER": "buffers", "GRAD": "gradients", "OPT": "optimizer_states",
               "ACT": "activations", "TEMP": "temporaries", "OTH": "other"}


@dataclass
class TrackedMemory:
    """Bytes by category at the peak of a training step, as MemTracker attributed them."""

    peak: int  # the most tensor memory alive at once
    by_category: dict[str, int]  # at the moment of the peak
    forward_activations: int  # activations alive at the end of the forward pass (steady-state step)
    seconds: float
    notes: list[str] = field(default_factory=list)


def _tracker():
    """MemTracker that accepts frozen parameters (it hooks every parameter's gradient; LoRA's base has none)
    and keeps only the global peak."""
    from torch.distributed._tools.mem_tracker import MemTracker, _MemRefType

    class FrozenAwareMemTracker(MemTracker):
        def _track_module_params_and_buffers(self, module, install_grad_hooks=True):
            sizes = super()._track_module_params_and_buffers(module, install_grad_hooks=False)
            for p in module.parameters() if install_grad_hooks else ():
                if p.requires_grad and self._param_to_grad_hook_handles.get(p) is None:
                    def on_grad(grad):
                        self._update_and_maybe_create_winfos(grad, _MemRefType.GRAD)
                    self._param_to_grad_hook_handles[p] = (
                        p.register_hook(on_grad), p.register_post_accumulate_grad_hook(lambda q: on_grad(q.grad)))
            return sizes

        def _update_peak_stats(self, peak_state):
            # only the step's global peak is read here: skip the per-module peaks, whose loop over every
            # module on every allocation makes LoRA models (4 modules per adapted layer) minutes slower
            for dev, snap in self._curr_mem_snap.items():
                if self._peak_mem.get(dev, 0) < snap["Total"]:
                    self._peak_mem[dev] = snap["Total"]
                    self._peak_mem_snap[dev] = dict(snap)

    return FrozenAwareMemTracker()


def _dtype(config: VramConfig) -> torch.dtype:
    return torch.float32 if config.precision in ("fp32", "mixed") else {"fp16": torch.float16,
                                                                        "bf16": torch.bfloat16}[config.precision]


def track_training_step(shape: ModelShape, config: VramConfig, steps: int = 2) -> TrackedMemory:
    """Two AdamW training steps of a randomly initialised Llama of `shape`, on fake tensors."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from transformers import LlamaConfig, LlamaForCausalLM

    config.validate()
    if config.method == "qlora":
        raise ValueError("4-bit layers cannot run on fake tensors: track method 'lora' and add the NF4 saving "
                         "by hand (lesson 04), or measure on a GPU (python benchmarks/vram_benchmark.py; lesson 04 plots its receipt).")
    if config.optimizer != "adamw":
        raise ValueError(f"only torch's AdamW is tracked here, not {config.optimizer!r}.")
    notes = []
    start = time.perf_counter()
    with FakeTensorMode():
        cfg = LlamaConfig(hidden_size=shape.hidden_size, intermediate_size=shape.intermediate_size,
                          num_hidden_layers=shape.num_hidden_layers, num_attention_heads=shape.num_attention_heads,
                          num_key_value_heads=shape.num_key_value_heads, vocab_size=shape.vocab_size,
                          tie_word_embeddings=shape.tie_word_embeddings, max_position_embeddings=config.seq_len,
                          attn_implementation=config.attn_implementation, use_cache=False)
        previous = torch.get_default_dtype()
        torch.set_default_dtype(_dtype(config))  # build in the working dtype: no second copy
        try:
            model = LlamaForCausalLM(cfg)
        finally:
            torch.set_default_dtype(previous)
        if config.gradient_checkpointing:
            with warnings.catch_warnings():  # transformers 5 renames the method; the old name still works
                warnings.simplefilter("ignore", FutureWarning)
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if config.method == "lora":  # the course's LoRA layers (= peft's, tests/test_lora.py), in the base dtype;
            # peft's own `.to()` cannot move parameters between fake tensors
            add_lora(model, LoraConfig(r=config.lora_r, lora_alpha=2 * config.lora_r,
                                       target_modules=ALL_LINEAR_TARGETS if config.lora_targets == "all-linear"
                                       else ATTENTION_TARGETS))
            if config.fp32_adapters:  # peft's autocast_adapter_dtype: fp32 adapters, which cast their input to fp32
                for module in model.modules():
                    if isinstance(module, LinearWithLoRA):  # new layers: fake tensors cannot change dtype
                        module.lora_A = torch.nn.Linear(module.in_features, config.lora_r, bias=False)
                        module.lora_B = torch.nn.Linear(config.lora_r, module.out_features, bias=False)
            if config.gradient_checkpointing:
                model.enable_input_require_grads()  # frozen embeddings: checkpointed blocks need a grad path
        model.train()
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4,
                                      foreach=config.foreach)  # CUDA's default is foreach; the CPU's is not
        ids = torch.randint(0, shape.vocab_size, (config.batch_size, config.seq_len))
        peak_snapshot, forward_activations = _tracked_steps(model, optimizer, ids, steps,
                                                            autocast=config.precision == "mixed")
    if config.precision == "mixed":
        notes.append("mixed: fp32 weights with bf16 autocast; the fp32 weights are the master copy")
    return TrackedMemory(peak=int(peak_snapshot.get("Total", 0)), by_category=_by_name(peak_snapshot),
                         forward_activations=forward_activations, seconds=time.perf_counter() - start, notes=notes)


def _tracked_steps(model, optimizer, ids, steps: int, autocast: bool = False) -> tuple[dict, int]:
    """`steps` training steps under the tracker: its peak snapshot, and the activations alive after the last forward."""
    tracker = _tracker()
    tracker.track_external(model, optimizer)
    forward_activations = 0
    with tracker:
        for step in range(steps):
            if step:
                tracker.reset_mod_stats()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                loss = model(input_ids=ids, labels=ids).loss
            current = next(iter(tracker.get_tracker_snapshot("current").values()), {})
            forward_activations = _by_name(current).get("activations", 0)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    return next(iter(tracker.get_tracker_snapshot("peak").values()), {}), forward_activations


def track_model_steps(model: torch.nn.Module, input_ids: torch.Tensor, steps: int = 2, lr: float = 1e-5) -> TrackedMemory:
    """AdamW steps of a real model on real tensors under MemTracker: exact tensor bytes, on a CPU too (lesson 04).

    Unlike `track_training_step` this runs the model you built — 4-bit bitsandbytes layers included,
    with their dequantized temporaries — so it shows what each recipe keeps, byte for byte.
    """
    start = time.perf_counter()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    peak_snapshot, forward_activations = _tracked_steps(model, optimizer, input_ids, steps)
    return TrackedMemory(peak=int(peak_snapshot.get("Total", 0)), by_category=_by_name(peak_snapshot),
                         forward_activations=forward_activations, seconds=time.perf_counter() - start)


def _by_name(snapshot: dict) -> dict[str, int]:
    out = {}
    for key, value in snapshot.items():
        name = str(getattr(key, "name", key)).split(".")[-1]
        if name in _CATEGORIES:
            out[_CATEGORIES[name]] = int(value)
    return out


# ---------------------------------------------------------------- measuring a real run

@dataclass
class PeakMemory:
    """A measured peak and how it was measured (the CPU number is a substitute, not GPU memory)."""

    peak_bytes: int
    method: str  # "cuda.max_memory_allocated" or "cpu: peak RSS increase (substitute)"


class RssSampler:
    """Peak resident memory of this process while a `with` block runs, sampled every millisecond (Linux)."""

    def __init__(self):
        self.peak = 0
        self._done = threading.Event()

    @staticmethod
    def rss() -> int:
        """Resident bytes now (/proc/self/statm: anonymous memory and mapped file pages together)."""
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _sample(self):
        while not self._done.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(0.001)

    def __enter__(self):
        self.peak = self.rss()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


def release_freed_memory() -> None:
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
    release_freed_memory()  # else memory freed by an earlier run is reused unseen and the increase reads ≈ 0
    base = RssSampler.rss()
    with RssSampler() as sampled:
        fn()
    return PeakMemory(max(sampled.peak - base, 0), "cpu: peak RSS increase (substitute)")
