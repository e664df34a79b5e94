"""Text to model inputs: tokenized rows and the collators that pad them into batches (lessons 01, 03, 05).

Prompt formats (how a dataset row becomes one training text) live with the data, in
`course_lib.data.datasets`; this module only turns texts into token ids.
"""

from __future__ import annotations

from typing import Sequence

__all__ = ["tokenize_classification", "tokenize_causal", "TokenizedOnDemand", "collator_for"]


def tokenize_classification(tokenizer, rows, max_length: int = 64) -> list[dict]:
    """Rows with "text" and "label" -> dicts of input_ids, attention_mask, labels (unpadded)."""
    out = []
    for row in rows:
        enc = tokenizer(row["text"], truncation=True, max_length=max_length)
        out.append({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                    "labels": int(row["label"])})
    return out


def tokenize_causal(tokenizer, texts: Sequence[str], max_length: int = 128) -> list[dict]:
    """Texts -> dicts of input_ids, attention_mask (labels are added by the collator)."""
    out = []
    for text in texts:
        enc = tokenizer(text + tokenizer.eos_token, truncation=True, max_length=max_length)
        out.append({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]})
    return out


class TokenizedOnDemand:
    """`tokenize_causal(tokenizer, texts, max_length)` as a sequence whose rows are tokenized when first read.

    A short training run draws a few hundred of thousands of rows; the shuffled order (DataLoader's, or
    `replay_mix`'s) depends only on the number of rows, so the batches are the same as with every row
    tokenized up front. `text_of(row)` turns a row into its text (default: the row is the text).
    """

    def __init__(self, tokenizer, rows: Sequence, max_length: int = 128, text_of=None):
        self.tokenizer, self.rows, self.max_length, self.text_of = tokenizer, rows, max_length, text_of
        self._done: dict[int, dict] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        i = int(i)
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i %= len(self)
        if i not in self._done:
            row = self.rows[i]
            self._done[i] = tokenize_causal(self.tokenizer, [self.text_of(row) if self.text_of else row],
                                            self.max_length)[0]
        return self._done[i]


def collator_for(tokenizer, task: str):
    """transformers' padding collator for "classification", its LM collator for "causal-lm"."""
    from transformers import DataCollatorForLanguageModeling, DataCollatorWithPadding

    if task == "classification":
        return DataCollatorWithPadding(tokenizer, return_tensors="pt")
    if task == "causal-lm":
        return DataCollatorForLanguageModeling(tokenizer, mlm=False, return_tensors="pt")
    raise ValueError(f"task must be 'classification' or 'causal-lm', not {task!r}.")
