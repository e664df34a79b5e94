"""The learning-rate range test (Smith 2017, arXiv 1506.01186 §3.3), fastai-style (lesson 02).

    result = lr_find(model, dataset, LRFinderConfig(), collate_fn=collate)
    result.valley, result.steep, result.minimum    # suggested learning rates
    plot_lr_find(result)                           # plotting is a separate call

Train for a short run while the LR grows exponentially from `start_lr` to `end_lr`, record an
exponentially smoothed loss, stop once it exceeds `stop_factor` × the best so far (or is NaN),
and restore the model's weights exactly: the sweep is a measurement, not training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from tqdm.auto import tqdm

from course_lib.models.base import set_seed
from course_lib.training.loop import shuffled_batches

__all__ = ["LRFinderConfig", "SuggestedLRs", "lr_find", "suggest", "plot_lr_find", "exponential_lrs"]


@dataclass
class LRFinderConfig:
    """Settings of `lr_find`; the defaults are fastai's."""

    start_lr: float = 1e-7  # first LR of the sweep
    end_lr: float = 10.0  # last LR, reached only if the loss never blows up
    num_steps: int = 100  # one batch per LR
    smoothing: float = 0.98  # β of the exponential moving average of the loss (bias-corrected)
    stop_factor: float = 4.0  # stop when smoothed loss > this × the best smoothed loss
    per_device_train_batch_size: int = 16
    weight_decay: float = 0.0  # AdamW, as in `train`
    max_grad_norm: float = 0.0  # no clipping: the test should show where training breaks
    seed: int = 0  # batch order
    disable_tqdm: bool = False


@dataclass
class SuggestedLRs:
    """Suggested learning rates and the curve they come from (`lrs`, smoothed `losses`)."""

    valley: float  # about halfway along the longest descending stretch (fastai's default)
    steep: float  # where the loss falls fastest per unit of log LR
    minimum: float  # LR at the lowest loss, divided by 10
    lrs: list[float] = field(default_factory=list, repr=False)
    losses: list[float] = field(default_factory=list, repr=False)

    def __str__(self) -> str:
        return f"SuggestedLRs(valley={self.valley:.2e}, steep={self.steep:.2e}, minimum={self.minimum:.2e})"


def exponential_lrs(start_lr: float, end_lr: float, num_steps: int) -> list[float]:
    """LR of each step of the sweep: start_lr · (end_lr/start_lr)^(i/(num_steps-1))."""
    if not 0 < start_lr < end_lr or num_steps < 2:
        raise ValueError(f"need 0 < start_lr < end_lr and num_steps >= 2, got {start_lr}, {end_lr}, {num_steps}.")
    ratio = end_lr / start_lr
    return [start_lr * ratio ** (i / (num_steps - 1)) for i in range(num_steps)]


def _valley(losses: list[float]) -> int:
    """An index about halfway along the longest descending subsequence (fastai's `valley`, verbatim)."""
    n = len(losses)
    lds, max_start, max_end = [1] * n, 0, 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end, max_start = i, i - lds[i]
    sections = (max_end - max_start) / 3
    return max_start + int(sections) + int(sections / 2)


def suggest(lrs: list[float], losses: list[float]) -> SuggestedLRs:
    """valley, steep and minimum suggestions from a (lrs, smoothed losses) curve, NaNs dropped."""
    pairs = [(lr, l) for lr, l in zip(lrs, losses) if math.isfinite(l)]
    if len(pairs) < 4:
        raise ValueError(f"The LR sweep recorded only {len(pairs)} finite losses: start it at a smaller "
                         "start_lr or give it more num_steps.")
    lrs, losses = [p[0] for p in pairs], [p[1] for p in pairs]
    # as fastai: ignore the first 10 % (smoothing warms up) and the last 5 steps (the blow-up)
    lo = len(lrs) // 10
    hi = len(lrs) - 5 if len(lrs) - lo > 10 else len(lrs)  # short curves keep every point
    x, y = lrs[lo:hi], losses[lo:hi]
    i_min = min(range(len(y)), key=y.__getitem__)
    slopes = [(y[i + 1] - y[i]) / (math.log(x[i + 1]) - math.log(x[i])) for i in range(len(y) - 1)]
    i_steep = min(range(len(slopes)), key=slopes.__getitem__)
    return SuggestedLRs(valley=x[_valley(y)], steep=x[i_steep], minimum=x[i_min] / 10, lrs=lrs, losses=losses)


def lr_find(model: torch.nn.Module, dataset, config: LRFinderConfig | None = None, *,
            collate_fn: Callable | None = None) -> SuggestedLRs:
    """Run the LR range test on `model`'s trainable parameters and restore its weights (lesson 02)."""
    config = config or LRFinderConfig()
    device = next(model.parameters()).device
    saved = {k: v.detach().clone() for k, v in model.state_dict().items()}  # exact copy to restore
    was_training = model.training
    set_seed(config.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("No trainable parameters: unfreeze something before running lr_find.")
    optimizer = torch.optim.AdamW(params, lr=config.start_lr, weight_decay=config.weight_decay)
    stream = shuffled_batches(dataset, config.per_device_train_batch_size, collate_fn, config.seed)
    lrs_planned = exponential_lrs(config.start_lr, config.end_lr, config.num_steps)
    lrs, smoothed, avg, best = [], [], 0.0, math.inf
    model.train()
    try:
        for i, lr in enumerate(tqdm(lrs_planned, desc="lr_find", disable=config.disable_tqdm, leave=False)):
            for g in optimizer.param_groups:
                g["lr"] = lr
            batch = {k: v.to(device) for k, v in next(stream).items()}
            loss = model(**batch).loss
            value = loss.item()
            if not math.isfinite(value):  # NaN/inf: the curve ends here, the point is dropped
                break
            avg = config.smoothing * avg + (1 - config.smoothing) * value
            smooth = avg / (1 - config.smoothing ** (i + 1))  # bias correction, as in Adam
            lrs.append(lr)
            smoothed.append(smooth)
            best = min(best, smooth)
            if smooth > config.stop_factor * best:
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
    finally:
        model.load_state_dict(saved)
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return suggest(lrs, smoothed)


def plot_lr_find(result: SuggestedLRs, ax=None, title: str = "LR range test"):
    """Smoothed loss against LR (log scale), with the three suggestions marked; returns the axes."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6, 3.5))[1]
    ax.plot(result.lrs, result.losses, label="smoothed training loss")
    for name, marker in (("valley", "o"), ("steep", "^"), ("minimum", "s")):
        lr = getattr(result, name)
        j = min(range(len(result.lrs)), key=lambda k: abs(math.log(result.lrs[k]) - math.log(lr)))
        ax.plot([lr], [result.losses[j]], marker, markersize=8, label=f"{name}: {lr:.1e}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("smoothed loss")
    ax.set_title(title)
    ax.legend()
    return ax
