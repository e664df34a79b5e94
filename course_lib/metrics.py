"""What the course measures: perplexity, bits per byte, next-token and classification accuracy and ROUGE-L (lessons 00, 01, 05, 06).

Language-model metrics cut every text into the same windows (`token_windows`), so perplexity and
next-token accuracy always score the same tokens. Perplexity is per *token*, so it compares models
that share a tokenizer; `bits_per_byte` scores every byte of the text and compares any two models.
Classification accuracy has one definition, `accuracy`, used by every evaluator here.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from tqdm.auto import tqdm

__all__ = ["token_windows", "rolling_windows", "mean_nll", "perplexity", "bits_per_byte", "next_token_accuracy",
           "accuracy", "predict_classes", "evaluate_classifier", "classification_evaluator", "rouge_l"]


def token_windows(tokenizer, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Each text tokenized (with its beginning-of-sequence token) and cut into windows of ≤ max_length tokens.

    Windows of one token are dropped: they predict nothing.
    """
    windows: list[list[int]] = []
    for text in texts:
        ids = tokenizer(text, verbose=False)["input_ids"]
        windows += [ids[i:i + max_length] for i in range(0, len(ids), max_length) if len(ids[i:i + max_length]) > 1]
    return windows


def rolling_windows(tokenizer, text: str, max_length: int) -> list[list[int]]:
    """A start token then the text's tokens, in windows of ≤ max_length that overlap by one token.

    Each window's first token is the previous window's last, so every token of the text is predicted
    exactly once. The start token is beginning-of-sequence, or end-of-sequence where the tokenizer has
    none (lm-evaluation-harness's rolling log-likelihood does the same).
    """
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    ids = [start] + tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
    return [ids[i:i + max_length] for i in range(0, len(ids) - 1, max_length - 1)]


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
    total, tokens = _score_windows(model, tokenizer, windows, batch_size, progress, _nll_sum)
    return total / tokens


def _nll_sum(logits: torch.Tensor, ids: torch.Tensor, keep: torch.Tensor) -> float:
    """Summed cross-entropy (nats) of the kept next-token predictions: logits (B,T,V), ids (B,T), keep (B,T-1)."""
    logits = logits.float()
    per_token = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.size(-1)), ids[:, 1:].reshape(-1), reduction="none")
    return per_token[keep.reshape(-1)].sum().item()


def perplexity(model, tokenizer, texts: Sequence[str], max_length: int = 128, batch_size: int = 16,
               progress: bool = False) -> float:
    """exp(mean NLL per token): how many tokens the model is 'choosing between' on average."""
    return math.exp(mean_nll(model, tokenizer, texts, max_length, batch_size, progress))


def bits_per_byte(model, tokenizer, texts: Sequence[str], max_length: int = 128, batch_size: int = 16,
                  progress: bool = False) -> float:
    """Negative log2-likelihood of `texts` per UTF-8 byte (lesson 00): unlike perplexity, comparable across
    tokenizers.

    Every token is predicted once (`rolling_windows`), so the bits cover every byte exactly.
    """
    windows = sorted((w for t in texts for w in rolling_windows(tokenizer, t, max_length)), key=len)
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    if n_bytes == 0:
        raise ValueError("bits per byte of empty texts is undefined.")
    total, _ = _score_windows(model, tokenizer, windows, batch_size, progress, _nll_sum)
    return total / math.log(2) / n_bytes


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


def rouge_l(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Mean ROUGE-L F-measure (Lin 2004: longest common subsequence), Google's `rouge_score` with stemming."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return sum(scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references)) / len(references)
