"""No training at all: zero-shot, few-shot and retrieval-augmented few-shot prompts (lesson 11).

A few-shot prompt here is a chat: k solved examples as earlier user/assistant turns, then the question.
`few_shot_row` returns it as a chat row whose last message is the reference answer, so lesson 06's
`answer_metrics` and `response_nll` score it unchanged. The examples are either the first k training
rows (`few_shot`) or the k training rows most similar to the question under BM25 (`Retriever`, the
`bm25s` package: Lù 2024), so the comparison with fine-tuning uses the same rows as the training runs.
"""

from __future__ import annotations

from typing import Sequence

__all__ = ["question", "few_shot_row", "Retriever", "prompt_tokens"]


def question(row: dict) -> str:
    """The user's question of a chat row (its first message)."""
    return row["messages"][0]["content"]


def few_shot_row(row: dict, examples: Sequence[dict]) -> dict:
    """`row` with `examples` (chat rows) before it as solved turns: user, assistant, …, user, reference."""
    turns = [m for e in examples for m in e["messages"][:2]]
    return {"messages": turns + list(row["messages"])}


class Retriever:
    """BM25 over the questions of `rows` (bm25s: Robertson–Zaragoza scoring, lower-cased word tokens)."""

    def __init__(self, rows: Sequence[dict]):
        import bm25s  # only the lessons and commands that retrieve need it

        self.rows = list(rows)
        self._bm25s = bm25s
        self.index = bm25s.BM25()
        self.index.index(self._tokens([question(r) for r in self.rows]), show_progress=False)

    def _tokens(self, texts: Sequence[str]):
        return self._bm25s.tokenize(list(texts), stopwords=None, show_progress=False)

    def scores(self, text: str) -> list[float]:
        """BM25 score of every indexed row for `text`, in the rows' order (0 for a text with no indexed word)."""
        words = self._bm25s.tokenize([text], stopwords=None, return_ids=False, show_progress=False)[0]
        known = [w for w in words if w in self.index.vocab_dict]
        if not known:
            return [0.0] * len(self.rows)
        return [float(s) for s in self.index.get_scores(known)]

    def top(self, text: str, k: int) -> list[dict]:
        """The k rows whose questions score highest for `text` (ties: the earlier row first)."""
        scores = self.scores(text)
        order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
        return [self.rows[i] for i in order[:k]]


def prompt_tokens(tokenizer, prompt: str) -> int:
    """Tokens the model reads before it answers."""
    return len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
