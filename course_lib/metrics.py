"""What the course measures: perplexity, next-token accuracy and classification accuracy (lessons 00, 01, 05).

Language-model metrics cut every text into the same windows (`token_windows`), so perplexity and
next-token accuracy always score the same tokens. Classification accuracy has one definition,
`accuracy`, used by every evaluator here.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from tqdm.auto import tqdm

__all__ = ["token_windows", "mean_nll", "perplexity", "next_token_accuracy", "accuracy", "predict_classes",
           "evaluate_classifier", "classification_evaluator"]


def token_windows(tokenizer, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Each text tokenized (with its beginning-of-sequence token) and cut into windows of ≤ max_length tokens.

    Windows of one token are dropped: they predict nothing.
    """
    windows: list[list[int]] = []
    for text in texts:
        ids = tokenizer(text, verbose=False)["input_ids"]
        windows += [ids[i:i + max_length] for i in range(0, len(ids), max_length) if len(ids[i:i + max_length]) > 1]
    return windows


def _padded(chunk: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and their attention mask, both (B, T)."""
    width = max(len(w) for w in chunk)
    ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, w in enumerate(chunk):
        ids[i, :len(w)] = torch.tensor(w)
        mask[i, :len(w)] = 1
    return ids.to(device), mask.to(device)


@torch.no_grad()
def _score_windows(model, tokenizer, windows: list[list[int]], batch_size: int, progress: bool,
                   score: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], float]) -> tuple[float, int]:
    """Sum of score(logits (B,T,V), ids (B,T), keep (B,T-1)) over batches, and the number of predicted tokens."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, tokens = 0.0, 0
    for start in tqdm(range(0, len(windows), batch_size), desc="scoring", disable=not progress, leave=False):
        ids, mask = _padded(windows[start:start + batch_size], tokenizer.pad_token_id or 0, device)
        logits = model(input_ids=ids, attention_mask=mask).logits
        keep = mask[:, 1:].bool()  # every token after the first of a window is predicted once
        total += score(logits, ids, keep)
        tokens += int(keep.sum())
    model.train(was_training)
    if tokens == 0:
        raise ValueError("this metric needs at least one text of two or more tokens.")
    return total, tokens


def mean_nll(model, tokenizer, texts: Sequence[str], max_length: int = 128, batch_size: int = 16,
             progress: bool = False) -> float:
    """Mean negative log-likelihood per predicted token (nats) of `texts` under a causal LM."""
    windows = sorted(token_windows(tokenizer, texts, max_length), key=len)  # similar lengths: less padding

    def nll(logits, ids, keep) -> float:
        logits = logits.float()
        per_token = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.size(-1)), ids[:, 1:].reshape(-1), reduction="none")
        return per_token[keep.reshape(-1)].sum().item()

    total, tokens = _score_windows(model, tokenizer, windows, batch_size, progress, nll)
    return total / tokens


def perplexity(model, tokenizer, texts: Sequence[str], max_length: int = 128, batch_size: int = 16,
               progress: bool = False) -> float:
    """exp(mean NLL per token): how many tokens the model is 'choosing between' on average."""
    return math.exp(mean_nll(model, tokenizer, texts, max_length, batch_size, progress))


def next_token_accuracy(model, tokenizer, texts: Sequence[str], max_length: int = 128,
                        batch_size: int = 16) -> float:
    """Share of tokens whose most likely prediction is the true next token (lesson 05's skill probe)."""
    windows = token_windows(tokenizer, texts, max_length)

    def correct(logits, ids, keep) -> float:
        return float(((logits[:, :-1].argmax(-1) == ids[:, 1:]) & keep).sum())

    total, tokens = _score_windows(model, tokenizer, windows, batch_size, False, correct)
    return total / tokens


def accuracy(predictions: Sequence[int] | torch.Tensor, labels: Sequence[int] | torch.Tensor) -> float:
    """Share of predictions equal to the labels (exact: a count divided by a count)."""
    p, y = torch.as_tensor(predictions), torch.as_tensor(labels)
    if p.shape != y.shape:
        raise ValueError(f"predictions have shape {tuple(p.shape)} but labels {tuple(y.shape)}.")
    if p.numel() == 0:
        raise ValueError("accuracy of no predictions is undefined.")
    return int((p == y).sum()) / p.numel()


@torch.no_grad()
def predict_classes(model, tokenizer, texts: Sequence[str], max_length: int = 64,
                    batch_size: int = 64) -> torch.Tensor:
    """Argmax class of each text under a sequence-classification model."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    preds = []
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(list(texts[i:i + batch_size]), truncation=True, max_length=max_length,
                        padding=True, return_tensors="pt").to(device)
        preds.append(model(**enc).logits.argmax(-1).cpu())
    model.train(was_training)
    return torch.cat(preds)


def evaluate_classifier(model, tokenizer, rows, max_length: int = 64) -> dict[str, float]:
    """{"accuracy": share of rows ({"text", "label"}) whose label the model predicts} (lesson 01)."""
    preds = predict_classes(model, tokenizer, [r["text"] for r in rows], max_length)
    return {"accuracy": accuracy(preds, [int(r["label"]) for r in rows])}


def classification_evaluator(encoded_rows: list[dict], collate_fn: Callable,
                             batch_size: int = 64) -> Callable[[torch.nn.Module], dict[str, float]]:
    """evaluate(model) -> {"loss", "accuracy"} on tokenized rows, for `train(evaluate=...)` (lesson 01)."""
    batches = [collate_fn(encoded_rows[i:i + batch_size]) for i in range(0, len(encoded_rows), batch_size)]

    @torch.no_grad()
    def evaluate(model: torch.nn.Module) -> dict[str, float]:
        device = next(model.parameters()).device
        total_loss, preds, labels = 0.0, [], []
        for batch in batches:
            out = model(**{k: v.to(device) for k, v in batch.items()})
            y = batch["labels"].to(device)
            total_loss += torch.nn.functional.cross_entropy(out.logits.float(), y, reduction="sum").item()
            preds.append(out.logits.argmax(-1).cpu())
            labels.append(y.cpu())
        preds_all, labels_all = torch.cat(preds), torch.cat(labels)
        return {"loss": total_loss / len(labels_all), "accuracy": accuracy(preds_all, labels_all)}
    return evaluate
