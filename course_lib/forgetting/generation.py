"""Generating answers to compare models by what they say, not only by their loss (lesson 05).

`greedy_answers` prints what a model says; the retention probe measures how much of it a fine-tune keeps:

    reference = retention_reference(model, tokenizer, GENERAL_PROMPTS)   # before fine-tuning
    ...fine-tune...
    retention(model, tokenizer, reference)   # {"kept": share of identical answers, "logprob_change": nats/token}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

__all__ = ["GENERAL_PROMPTS", "greedy_ids", "greedy_answers", "prompt_ids", "answer_logprob", "RetentionReference",
           "retention_reference", "retention"]

# Held-out general questions for the retention probe: everyday knowledge, none of it in the course's
# fine-tuning sets (instructions about Python, area labels). Written for this course.
GENERAL_PROMPTS = (
    "What is the capital of Italy?", "How many days are there in a week?", "What colour is the sky on a clear day?",
    "Name a planet in our solar system.", "What is 7 plus 5?", "What do bees make?",
    "What is the opposite of hot?", "Which animal is known as the king of the jungle?",
    "What is water made of?", "How many legs does a spider have?", "What is the largest ocean on Earth?",
    "Who wrote Romeo and Juliet?", "What language is spoken in Spain?", "What is the freezing point of water?",
    "What do plants need to grow?", "Give me a synonym for happy.", "What is the capital of Japan?",
    "How many hours are in a day?", "What is the main ingredient of bread?", "Name a primary colour.",
    "What is the boiling point of water in Celsius?", "Which season comes after winter?",
    "What is the plural of mouse?", "What gas do humans breathe in to live?",
)


def prompt_ids(tokenizer, question: str) -> list[int]:
    """Token ids of one user question, through the tokenizer's chat template when it has one (lesson 05)."""
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                             add_generation_prompt=True)
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    return tokenizer(question)["input_ids"]


@torch.no_grad()
def greedy_ids(model, tokenizer, ids: list[int], max_new_tokens: int) -> list[int]:
    """The greedy continuation of one prompt (ids), without the prompt."""
    device = next(model.parameters()).device
    x = torch.tensor([ids], device=device)
    out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=max_new_tokens,
                         do_sample=False, pad_token_id=tokenizer.pad_token_id)
    return out[0, len(ids):].tolist()


def greedy_answers(model, tokenizer, prompts: Sequence[str], max_new_tokens: int = 16) -> list[str]:
    """The model's greedy continuation of each prompt, one prompt at a time (no padding to get wrong)."""
    return [tokenizer.decode(greedy_ids(model, tokenizer, tokenizer(p)["input_ids"], max_new_tokens),
                             skip_special_tokens=True).strip() for p in prompts]


@torch.no_grad()
def answer_logprob(model, prompt: list[int], answer: list[int]) -> float:
    """Mean log-probability per token (nats) of `answer` following `prompt`, both token ids (lesson 05)."""
    if not answer:
        raise ValueError("answer_logprob needs at least one answer token.")
    device = next(model.parameters()).device
    ids = torch.tensor([prompt + answer], device=device)
    logits = model(input_ids=ids).logits[0, len(prompt) - 1:-1].float()  # (len(answer), V): predicts each answer token
    logp = torch.log_softmax(logits, dim=-1).gather(1, ids[0, len(prompt):, None])
    return logp.mean().item()


@dataclass
class RetentionReference:
    """What the model said before fine-tuning: the reference of the retention probe (lesson 05)."""

    questions: list[str]
    prompts: list[list[int]]  # token ids fed to the model (chat template applied)
    answers: list[list[int]]  # its greedy answers, token ids (an end-of-turn token included if it stopped)
    logprobs: list[float]  # mean log-probability per answer token, nats


def retention_reference(model, tokenizer, questions: Sequence[str], max_new_tokens: int = 16) -> RetentionReference:
    """Greedy answers of `model` to `questions` and their log-probabilities: the 'before' (lesson 05)."""
    prompts = [prompt_ids(tokenizer, q) for q in questions]
    answers = [greedy_ids(model, tokenizer, p, max_new_tokens) for p in prompts]
    return RetentionReference(list(questions), prompts, answers,
                              [answer_logprob(model, p, a) for p, a in zip(prompts, answers)])


def retention(model, tokenizer, reference: RetentionReference) -> dict:
    """How much of `reference` a model kept: share of identical greedy answers, Δ mean log-prob (lesson 05).

    kept = share of questions whose greedy answer is token for token the reference's;
    logprob_change = mean over questions of (log-prob per token of the reference answer, now − before),
    nats/token, < 0 = the old answers became less likely.
    """
    answers, changes = [], []
    for prompt, ref, before in zip(reference.prompts, reference.answers, reference.logprobs):
        answers.append(greedy_ids(model, tokenizer, prompt, len(ref)))
        changes.append(answer_logprob(model, prompt, ref) - before)
    kept = [a == ref for a, ref in zip(answers, reference.answers)]
    return {"kept": sum(kept) / len(kept), "logprob_change": sum(changes) / len(changes),
            "answers": [tokenizer.decode(a, skip_special_tokens=True).strip() for a in answers]}
