"""Text to model inputs: tokenized rows and the collators that pad them into batches (lessons 01, 03, 05).

Prompt formats (how a dataset row becomes one training text) live with the data, in
`course_lib.data.datasets`; this module only turns texts into token ids.
"""

from __future__ import annotations

from typing import Sequence

__all__ = ["tokenize_classification", "tokenize_causal", "collator_for"]


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


def collator_for(tokenizer, task: str):
    """transformers' padding collator for "classification", its LM collator for "causal-lm"."""
    from transformers import DataCollatorForLanguageModeling, DataCollatorWithPadding

    if task == "classification":
        return DataCollatorWithPadding(tokenizer, return_tensors="pt")
    if task == "causal-lm":
        return DataCollatorForLanguageModeling(tokenizer, mlm=False, return_tensors="pt")
    raise ValueError(f"task must be 'classification' or 'causal-lm', not {task!r}.")
