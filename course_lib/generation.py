"""Generating answers to compare models by what they say, not only by their loss (lesson 05)."""

from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["greedy_answers"]


@torch.no_grad()
def greedy_answers(model, tokenizer, prompts: Sequence[str], max_new_tokens: int = 16) -> list[str]:
    """The model's greedy continuation of each prompt, one prompt at a time (no padding to get wrong)."""
    device = next(model.parameters()).device
    answers = []
    for prompt in prompts:
        ids = tokenizer(prompt, return_tensors="pt")["input_ids"].to(device)
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             do_sample=False, pad_token_id=tokenizer.pad_token_id)
        answers.append(tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip())
    return answers
