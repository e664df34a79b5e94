"""Padding not paid for: padded batches vs TRL's padding-free batches, on the same examples (lesson 06).

A padded batch stretches every example to the longest one; the model computes every pad position and the
loss throws it away. TRL's padding-free collator (`DataCollatorForLanguageModeling(padding_free=True)`, what
`SFTConfig(padding_free=True)` and `packing=True` with the default best-fit-decreasing strategy use) puts the
examples end to end in one row, with no attention mask and position ids that restart at 0 for each example.
transformers reads those restarts as document boundaries (`masking_utils.find_packed_sequence_indices`) and
builds a block-diagonal causal mask, so no example attends to another: each example's per-token losses
must equal the padded batch's. `cross_attention_control` drops the restarts to show that the check can fail.

    report = compare_batches(model, examples, pad_token_id)   # examples: SFTTrainer's tokenized rows
"""

from __future__ import annotations

import time
from typing import Sequence

import torch
import torch.nn.functional as F

__all__ = ["collate", "pad_fraction", "example_losses", "compare_batches"]


def collate(examples: Sequence[dict], pad_token_id: int, padding_free: bool) -> dict:
    """TRL's own collator, padded or padding-free (examples carry input_ids and labels, as SFTTrainer makes them)."""
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    rows = [{"input_ids": e["input_ids"], "labels": e.get("labels", e["input_ids"])} for e in examples]
    return DataCollatorForLanguageModeling(pad_token_id=pad_token_id, padding_free=padding_free)(rows)


def pad_fraction(batch: dict) -> float:
    """Share of the computed positions that are padding (0 for a padding-free batch)."""
    if "attention_mask" in batch:
        return 1.0 - float(batch["attention_mask"].float().mean())
    return 0.0


def _model_inputs(batch: dict, use_cache: bool = False) -> dict:
    """The model's inputs, with the KV cache off as TRL's SFTTrainer passes it (`compute_loss`): transformers
    looks for the position-id restarts only when there is no cache, so a model called with its config's
    `use_cache=True` would let attention cross the examples of a padding-free row."""
    keys = ("input_ids", "attention_mask", "position_ids")
    return {**{k: batch[k] for k in keys if k in batch}, "use_cache": use_cache}


def example_losses(model, batch: dict, split_by: torch.Tensor | None = None,
                   use_cache: bool = False) -> list[torch.Tensor]:
    """Each example's per-token losses on its target tokens, in order (the labels shifted by one, as the model's
    own loss does). Padded: one example per row. Padding-free: split where the position ids restart (those of
    `split_by` if given: the control feeds the model other position ids than the ones that mark the examples)."""
    logits = model(**_model_inputs(batch, use_cache)).logits.float()
    labels = batch["labels"]
    token_loss = F.cross_entropy(logits[:, :-1].transpose(1, 2), labels[:, 1:], ignore_index=-100, reduction="none")
    valid = labels[:, 1:] != -100
    if "attention_mask" in batch:
        return [token_loss[i][valid[i]] for i in range(labels.shape[0])]
    positions = batch["position_ids"] if split_by is None else split_by
    starts = (positions[0] == 0).nonzero().flatten().tolist() + [labels.shape[1]]
    return [token_loss[0, a:b - 1][valid[0, a:b - 1]] for a, b in zip(starts, starts[1:])]


def _seconds_per_batch(model, batches: list[dict], repeats: int) -> float:
    """Forward and backward (the cost of a training step before the optimizer), the best of `repeats`."""
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for batch in batches:
            model(**_model_inputs(batch), labels=batch["labels"]).loss.backward()
        best = min(best, time.perf_counter() - t)
        model.zero_grad(set_to_none=True)
    return best


def compare_batches(model, examples: Sequence[dict], pad_token_id: int, batch_size: int = 4,
                    repeats: int = 2) -> dict:
    """Padded vs padding-free on the same examples: pad fraction, effective (non-pad) tokens per second,
    the largest per-token loss difference, and the same with the position-id restarts removed (the control)."""
    chunks = [examples[i:i + batch_size] for i in range(0, len(examples), batch_size)]
    padded = [collate(c, pad_token_id, padding_free=False) for c in chunks]
    free = [collate(c, pad_token_id, padding_free=True) for c in chunks]
    real_tokens = sum(len(e["input_ids"]) for e in examples)
    computed = sum(b["input_ids"].numel() for b in padded)
    model.eval()
    with torch.no_grad():
        diffs, control = [], []
        for p, f in zip(padded, free):
            reference = example_losses(model, p)
            diffs += [float((a - b).abs().max()) for a, b in zip(reference, example_losses(model, f))]
            one_document = {**f, "position_ids": torch.arange(f["input_ids"].shape[1])[None]}  # no restarts
            control += [float((a - b).abs().max())
                        for a, b in zip(reference, example_losses(model, one_document, split_by=f["position_ids"]))]
    model.train()
    seconds = {"padded": _seconds_per_batch(model, padded, repeats), "padding_free": _seconds_per_batch(model, free, repeats)}
    model.eval()
    return {"examples": len(examples), "batch_size": batch_size, "real_tokens": real_tokens,
            "padded_positions": computed, "pad_fraction_padded": round(1 - real_tokens / computed, 4),
            "pad_fraction_padding_free": round(sum(pad_fraction(b) for b in free) / len(free), 4),
            "max_loss_diff": max(diffs), "max_loss_diff_without_restarts": max(control),
            "seconds": {k: round(v, 3) for k, v in seconds.items()},
            "effective_tokens_per_second": {k: round(real_tokens / v, 1) for k, v in seconds.items()}}
