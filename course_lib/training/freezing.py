"""Choosing what trains: freezing by name, layer groups, gradual unfreezing (lessons 01, 02).

A transformer with a task head splits into *layer groups*, bottom to top:

    embeddings | block 0 | block 1 | ... | block L-1 (+ final norm) | head

Every strategy of lesson 01 is a choice of trainable groups: a linear probe trains only the
head, "top N blocks" trains the head and the N groups under it, full fine-tuning trains all.
ULMFiT's gradual unfreezing (Howard & Ruder 2018) opens one more group from the top every few
steps, and its discriminative learning rates (lesson 02) divide the LR by 2.6 per group downwards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from course_lib.models.base import count_parameters

__all__ = ["freeze_all_but", "layer_groups", "set_trainable_groups", "unfreeze_top_blocks",
           "gradual_unfreezing", "TrainableReport", "trainable_report", "discriminative_lr_groups"]


def freeze_all_but(model: torch.nn.Module, patterns: Sequence[str]) -> list[str]:
    """Freeze every parameter whose name matches none of the regex `patterns`; returns the trainable names (lesson 01)."""
    compiled = [re.compile(p) for p in patterns]
    trainable = []
    for name, p in model.named_parameters():
        p.requires_grad = any(c.search(name) for c in compiled)
        if p.requires_grad:
            trainable.append(name)
    if patterns and not trainable:
        raise ValueError(f"No parameter name matches any of {list(patterns)}; names look like "
                         f"{[n for n, _ in model.named_parameters()][:3]}.")
    return trainable


def _blocks(body: torch.nn.Module) -> tuple[str, torch.nn.ModuleList]:
    """The body's stack of transformer blocks: its longest ModuleList (Llama's `layers`, GPT-2's `h`)."""
    lists = [(n, m) for n, m in body.named_modules() if isinstance(m, torch.nn.ModuleList)]
    if not lists:
        raise ValueError(f"{type(body).__name__} has no ModuleList of transformer blocks.")
    return max(lists, key=lambda nm: len(nm[1]))


def layer_groups(model: torch.nn.Module) -> list[list[str]]:
    """Parameter names in groups from bottom to top: embeddings, each block (final norm joins the last), head (lesson 01)."""
    prefix = getattr(model, "base_model_prefix", "")
    body = getattr(model, prefix, None) if prefix else None
    if body is None:  # a bare body (e.g. LlamaModel): no head group
        body, prefix = model, ""
    dot = f"{prefix}." if prefix else ""
    blocks_name, blocks = _blocks(body)
    n_blocks = len(blocks)
    embed_ids = {id(p) for p in model.get_input_embeddings().parameters()}
    groups: list[list[str]] = [[] for _ in range(n_blocks + 2)]  # embeddings, blocks..., head
    block_re = re.compile(rf"^{re.escape(dot + blocks_name)}\.(\d+)\.")
    seen: set[int] = set()
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in seen:  # a tied weight (e.g. lm_head = embeddings) stays in its first group
            continue
        seen.add(id(p))
        m = block_re.match(name)
        if m:
            groups[1 + int(m.group(1))].append(name)
        elif id(p) in embed_ids:
            groups[0].append(name)
        elif name.startswith(dot):  # final norm and anything else after the blocks
            groups[n_blocks].append(name)
        else:  # outside the body: the task head
            groups[n_blocks + 1].append(name)
    return [g for g in groups if g]


def set_trainable_groups(model: torch.nn.Module, n_top: int) -> list[str]:
    """Make exactly the top `n_top` layer groups trainable (0 freezes all); returns the trainable names."""
    groups = layer_groups(model)
    if not 0 <= n_top <= len(groups):
        raise ValueError(f"n_top must be between 0 and {len(groups)} (the number of layer groups), not {n_top}.")
    keep = {n for g in (groups[len(groups) - n_top:] if n_top else []) for n in g}
    for name, p in model.named_parameters():
        p.requires_grad = name in keep
    return [n for n, p in model.named_parameters() if p.requires_grad]


def unfreeze_top_blocks(model: torch.nn.Module, n: int) -> list[str]:
    """Train the head and the top `n` transformer blocks, freeze the rest; n=0 is a linear probe (lesson 01)."""
    return set_trainable_groups(model, 1 + n)


def gradual_unfreezing(every: int, start: int = 1) -> Callable[[int, torch.nn.Module], None]:
    """A `train(on_step_begin=...)` hook: `start` top groups trainable, one more every `every` steps (ULMFiT)."""
    if every < 1:
        raise ValueError(f"every must be a positive number of steps, not {every}.")

    def hook(step: int, model: torch.nn.Module) -> None:
        n_groups = len(layer_groups(model))
        set_trainable_groups(model, min(n_groups, start + (step - 1) // every))
    return hook


@dataclass
class TrainableReport:
    """How many parameters train: `print(report)` reads like peft's print_trainable_parameters."""

    trainable: int
    total: int

    @property
    def percent(self) -> float:
        return 100.0 * self.trainable / self.total if self.total else 0.0

    def __str__(self) -> str:
        return (f"trainable params: {self.trainable:,} || all params: {self.total:,} || "
                f"trainable%: {self.percent:.4f}")


def trainable_report(model: torch.nn.Module) -> TrainableReport:
    """Trainable and total parameter counts, tied weights counted once (lesson 01)."""
    return TrainableReport(count_parameters(model, trainable_only=True), count_parameters(model))


def discriminative_lr_groups(model: torch.nn.Module, lr: float, factor: float = 2.6,
                             weight_decay: float = 0.0) -> list[dict]:
    """Optimizer parameter groups, top group at `lr`, each lower group at the one above / `factor` (ULMFiT; lesson 02)."""
    params = dict(model.named_parameters())
    groups = layer_groups(model)
    top = len(groups) - 1
    return [{"params": [params[n] for n in g], "lr": lr / factor ** (top - i), "weight_decay": weight_decay,
             "name": f"group {i}"} for i, g in enumerate(groups)]
