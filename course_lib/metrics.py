"""Perplexity and accuracy, the two numbers the course measures most (lessons 00, 01, 05)."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from tqdm.auto import tqdm

__all__ = ["perplexity", "mean_nll", "accuracy"]


@torch.no_grad()
def mean_nll(model, tokenizer, texts: Sequence[str], max_length: int = 128, batch_size: int = 16,
             progress: bool = False) -> float:
    """Mean negative log-likelihood per predicted token (nats) of `texts` under a causal LM.

    Each text is tokenized (with its beginning-of-sequence token), cut into windows of at most
    `max_length` tokens, and every token after the first of a window is predicted once.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    windows: list[list[int]] = []
    for text in texts:
        ids = tokenizer(text, verbose=False)["input_ids"]
        windows += [ids[i:i + max_length] for i in range(0, len(ids), max_length) if len(ids[i:i + max_length]) > 1]
    windows.sort(key=len)  # similar lengths together: less padding
    total_nll, total_tokens = 0.0, 0
    batches = range(0, len(windows), batch_size)
    for start in tqdm(batches, desc="perplexity", disable=not progress, leave=False):
        chunk = windows[start:start + batch_size]
        width = max(len(w) for w in chunk)
        ids = torch.full((len(chunk), width), tokenizer.pad_token_id or 0, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, w in enumerate(chunk):
            ids[i, :len(w)] = torch.tensor(w)
            mask[i, :len(w)] = 1
        ids, mask = ids.to(device), mask.to(device)
        logits = model(input_ids=ids, attention_mask=mask).logits.float()  # (B, T, V)
        nll = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.size(-1)), ids[:, 1:].reshape(-1), reduction="none")
        keep = mask[:, 1:].reshape(-1).bool()
        total_nll += nll[keep].sum().item()
        total_tokens += int(keep.sum())
    model.train(was_training)
    if total_tokens == 0:
        raise ValueError("perplexity needs at least one text of two or more tokens.")
    return total_nll / total_tokens


def perplexity(model, tokenizer, texts: Sequence[str], max_length: int = 128, batch_size: int = 16,
               progress: bool = False) -> float:
    """exp(mean NLL per token): how many tokens the model is 'choosing between' on average."""
    return math.exp(mean_nll(model, tokenizer, texts, max_length, batch_size, progress))


def accuracy(predictions: Sequence[int] | torch.Tensor, labels: Sequence[int] | torch.Tensor) -> float:
    """Share of predictions equal to the labels."""
    p, y = torch.as_tensor(predictions), torch.as_tensor(labels)
    if p.shape != y.shape:
        raise ValueError(f"predictions have shape {tuple(p.shape)} but labels {tuple(y.shape)}.")
    return (p == y).float().mean().item()
