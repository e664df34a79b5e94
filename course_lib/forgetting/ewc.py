"""Elastic weight consolidation (Kirkpatrick et al. 2017): a quadratic pull towards the old weights (lesson 05).

    fisher = fisher_diagonal(model, old_rows, collate)       # how much each weight mattered
    train(model, rows, config, extra_loss=EWCPenalty(model, fisher, lam=1e4))
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

__all__ = ["fisher_diagonal", "ewc_penalty", "EWCPenalty"]


def fisher_diagonal(model, rows: Sequence, collate_fn: Callable) -> dict[str, torch.Tensor]:
    """Diagonal empirical Fisher: mean over sequences of each trainable parameter's squared gradient (lesson 05).

    One sequence per backward pass, because the Fisher averages squared *per-example*
    gradients; squaring a batch's mean gradient would underestimate it.
    """
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    fisher = {n: torch.zeros_like(p) for n, p in params.items()}
    was_training = model.training
    model.eval()  # no dropout: the Fisher of the model we keep
    device = next(model.parameters()).device
    for row in rows:
        batch = {k: v.to(device) for k, v in collate_fn([row]).items()}
        model.zero_grad(set_to_none=True)
        model(**batch).loss.backward()
        for n, p in params.items():
            if p.grad is not None:
                fisher[n] += p.grad.detach() ** 2
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return {n: f / max(len(rows), 1) for n, f in fisher.items()}


def ewc_penalty(params: dict[str, torch.Tensor], anchor: dict[str, torch.Tensor],
                fisher: dict[str, torch.Tensor], lam: float) -> torch.Tensor:
    """(λ/2) Σ_i F_i (θ_i − θ*_i)² over the parameters named in `fisher` (Kirkpatrick et al. 2017, eq. 3)."""
    total = sum((fisher[n] * (params[n] - anchor[n]) ** 2).sum() for n in fisher)
    return lam / 2 * total if fisher else torch.tensor(0.0)


class EWCPenalty:
    """The EWC penalty anchored at the model's current weights θ*; pass as `train(extra_loss=...)`."""

    def __init__(self, model: torch.nn.Module, fisher: dict[str, torch.Tensor], lam: float):
        self.fisher, self.lam = fisher, lam
        self.anchor = {n: p.detach().clone() for n, p in model.named_parameters() if n in fisher}

    def __call__(self, model: torch.nn.Module) -> torch.Tensor:
        return ewc_penalty(dict(model.named_parameters()), self.anchor, self.fisher, self.lam)
