"""How many tokens a `course` command trained on, and how fast: one meter for every training loop.

    with TokenMeter() as meter:          # `course` wraps every command in one
        run(config)                      # the course's own loop, Trainer, SFTTrainer, DPOTrainer, ...
    print(meter.summary())               # "trained on 61,440 tokens in 331.9 s: 185 tokens/s (2 threads, 2 cores)"

The commands train through several loops (course_lib.training, transformers' Trainer, TRL's trainers), so
the meter counts where they all meet: the token-embedding lookup (a global forward hook on nn.Embedding, which
every model of the course calls once per forward with the token ids). A lookup counts as training when the
module is in train mode with gradients on, else as evaluation or generation. Pad tokens are counted: the model
computes them (lesson 06 measures what packing saves). The time is the command's whole wall time, so tokens/s
is end to end: what a learner waits for.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import torch

__all__ = ["TokenMeter", "cpu_cores", "active_meter", "lesson_threads", "command_threads", "matmul_gflops"]

_ACTIVE: list["TokenMeter"] = []


def cpu_cores() -> int:
    """The cores this process may run on (a container's or taskset's limit, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def lesson_threads() -> int:
    """What a lesson's first cell uses: $COURSE_THREADS, else 1 (its printed numbers repeat on any laptop)."""
    return int(os.environ.get("COURSE_THREADS") or 1)


def command_threads(requested: int | None = None) -> int:
    """What a `course` command uses: --threads, else $COURSE_THREADS, else every core (long runs, whole machine)."""
    n = requested or int(os.environ.get("COURSE_THREADS") or 0) or cpu_cores()
    if n < 1:
        raise ValueError(f"--threads must be at least 1, not {n}.")
    return n


def matmul_gflops(m: int, k: int, n: int, threads: int, repeats: int = 5, budget_s: float = 3.0) -> float:
    """This CPU's best fp32 (m×k)@(k×n) rate on `threads` threads, in GFLOP/s (the ceiling of training)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(m, k), torch.randn(k, n)
        a @ b  # warm-up
        best, start = float("inf"), time.perf_counter()
        for _ in range(repeats):
            t = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t)
            if time.perf_counter() - start > budget_s:
                break
    finally:
        torch.set_num_threads(previous)
    return 2 * m * k * n / best / 1e9


def active_meter() -> "TokenMeter | None":
    """The meter of the running command, if any (save_results records its reading)."""
    return _ACTIVE[-1] if _ACTIVE else None


@dataclass
class TokenMeter:
    """Counts the tokens the models look up while active (a context manager)."""

    train_tokens: int = 0
    other_tokens: int = 0
    started: float = field(default_factory=time.perf_counter)
    _handles: list = field(default_factory=list, repr=False)

    def _pre(self, module, args):
        if not isinstance(module, torch.nn.Embedding) or not args or args[0].is_floating_point():
            return
        if module.training and torch.is_grad_enabled():
            self.train_tokens += args[0].numel()
        else:
            self.other_tokens += args[0].numel()

    def __enter__(self) -> "TokenMeter":
        from torch.nn.modules.module import register_module_forward_pre_hook

        self.started = time.perf_counter()
        self._handles = [register_module_forward_pre_hook(self._pre)]
        _ACTIVE.append(self)
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if self in _ACTIVE:
            _ACTIVE.remove(self)

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def reading(self) -> dict:
        """What results files record: threads, cores, training tokens, wall seconds, tokens/s (end to end)."""
        seconds = self.seconds
        return {"threads": torch.get_num_threads(), "cpu_cores": cpu_cores(), "train_tokens": self.train_tokens,
                "wall_seconds": round(seconds, 1),
                "train_tokens_per_second": round(self.train_tokens / seconds, 1) if seconds > 0 else None}

    def summary(self) -> str:
        r = self.reading()
        where = f"({r['threads']} thread{'s' * (r['threads'] != 1)}, {r['cpu_cores']} cores)"
        if not r["train_tokens"]:
            return f"{r['wall_seconds']} s {where}"
        return (f"trained on {r['train_tokens']:,} tokens in {r['wall_seconds']} s: "
                f"{r['train_tokens_per_second']:,.0f} tokens/s end to end {where}")
