"""LoRA from scratch, with peft's names, so its numbers can be checked against peft (lesson 03).

W' = W + (alpha / r) · B A, with A (r × k) and B (d × r), B = 0 at the start (Hu et al. 2022, §4.1).
`LinearWithLoRA` wraps one nn.Linear; `add_lora(model, config)` wraps the named target modules
of a model and freezes everything else. The rank ablation that uses it is
`course_lib.experiments.lora_ablation` (`course lora-ablation`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

__all__ = ["LoraConfig", "LinearWithLoRA", "add_lora", "merge_lora", "unmerge_lora", "lora_parameter_count",
           "lora_state_dict", "ATTENTION_TARGETS", "ALL_LINEAR_TARGETS"]

ATTENTION_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
ALL_LINEAR_TARGETS = ATTENTION_TARGETS + ("gate_proj", "up_proj", "down_proj")  # peft's "all-linear" on Llama


@dataclass
class LoraConfig:
    """The LoRA settings, named as in peft.LoraConfig."""

    r: int = 8  # rank of the update B A
    lora_alpha: float = 16.0  # the update is scaled by lora_alpha / r (or / sqrt(r) with use_rslora)
    lora_dropout: float = 0.0  # dropout applied to the input of the LoRA path only
    target_modules: Sequence[str] | str = ("q_proj", "v_proj")  # module-name suffixes, or "all-linear"
    use_rslora: bool = False  # rank-stabilised scaling alpha / sqrt(r) (Kalajdzievski 2023)


def _check_rank(r: int) -> None:
    if not isinstance(r, int) or r <= 0:
        raise ValueError(f"LoRA rank r must be a positive integer, got {r!r}.")


class LinearWithLoRA(nn.Module):
    """y = base(x) + scaling · B(A(dropout(x))); the base layer stays frozen (lesson 03)."""

    def __init__(self, base: nn.Linear, r: int, lora_alpha: float, lora_dropout: float = 0.0,
                 use_rslora: bool = False):
        super().__init__()
        _check_rank(r)
        self.base_layer = base
        self.r, self.lora_alpha = r, lora_alpha
        self.in_features, self.out_features = base.in_features, base.out_features
        weight = base.weight
        dtype = weight.dtype if weight.dtype.is_floating_point else torch.float32  # 4-bit bases: fp32 adapters
        self.lora_A = nn.Linear(self.in_features, r, bias=False, device=weight.device, dtype=dtype)  # (r, k)
        self.lora_B = nn.Linear(r, self.out_features, bias=False, device=weight.device, dtype=dtype)  # (d, r)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))  # as loralib and peft do
        nn.init.zeros_(self.lora_B.weight)  # B = 0, so B A = 0: the wrapped model starts unchanged
        self.lora_dropout = nn.Dropout(lora_dropout) if lora_dropout > 0 else nn.Identity()
        self.scaling = lora_alpha / (math.sqrt(r) if use_rslora else r)
        self.merged = False
        for p in base.parameters():
            p.requires_grad_(False)

    def get_delta_weight(self) -> torch.Tensor:
        """scaling · B A, shaped like the base weight (d, k)."""
        return (self.lora_B.weight @ self.lora_A.weight) * self.scaling

    @torch.no_grad()
    def merge(self) -> None:
        """W ← W + scaling · B A: inference then costs exactly what the base layer costs."""
        if not self.merged:
            self.base_layer.weight += self.get_delta_weight().to(self.base_layer.weight.dtype)
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """W ← W − scaling · B A (exact up to rounding in the weight's dtype)."""
        if self.merged:
            self.base_layer.weight -= self.get_delta_weight().to(self.base_layer.weight.dtype)
            self.merged = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (..., k) -> (..., d)
        y = self.base_layer(x)
        if self.merged:
            return y
        lora = self.lora_B(self.lora_A(self.lora_dropout(x.to(self.lora_A.weight.dtype))))
        return y + (lora * self.scaling).to(y.dtype)

    def extra_repr(self) -> str:
        return f"r={self.r}, lora_alpha={self.lora_alpha}, scaling={self.scaling:.4g}, merged={self.merged}"


def _targets(config: LoraConfig) -> tuple[str, ...]:
    if config.target_modules == "all-linear":
        return ALL_LINEAR_TARGETS
    if isinstance(config.target_modules, str):
        return (config.target_modules,)
    return tuple(config.target_modules)


def add_lora(model: nn.Module, config: LoraConfig) -> list[str]:
    """Wrap every nn.Linear whose name ends with a target in LinearWithLoRA, freeze the rest; returns the names."""
    _check_rank(config.r)
    targets = _targets(config)
    for p in model.parameters():
        p.requires_grad_(False)
    names = [name for name, m in model.named_modules()
             if isinstance(m, nn.Linear) and not isinstance(m, LinearWithLoRA) and name.split(".")[-1] in targets]
    if not names:
        raise ValueError(f"No nn.Linear module of the model is named like {list(targets)}; "
                         "print(model) shows the names to target.")
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LinearWithLoRA(getattr(parent, child), config.r, config.lora_alpha,
                                              config.lora_dropout, config.use_rslora))
    return names


def _lora_layers(model: nn.Module) -> list[LinearWithLoRA]:
    return [m for m in model.modules() if isinstance(m, LinearWithLoRA)]


def merge_lora(model: nn.Module) -> None:
    """Merge every LoRA layer of the model into its base weight."""
    for m in _lora_layers(model):
        m.merge()


def unmerge_lora(model: nn.Module) -> None:
    """Undo `merge_lora`."""
    for m in _lora_layers(model):
        m.unmerge()


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the lora_A / lora_B weights: what an adapter checkpoint stores."""
    return {k: v for k, v in model.state_dict().items() if "lora_" in k}


def lora_parameter_count(d: int, k: int, r: int) -> int:
    """Trainable parameters of LoRA on one d × k matrix: r·(d + k) instead of d·k (lesson 03)."""
    _check_rank(r)
    return r * (d + k)
