"""An LLM judge you can run: the local model asked "which answer is better, A or B?", in both orders (lesson 07).

Zheng et al. (2023) found strong judges agree with people about as often as people agree with each other,
and documented position, verbosity and self-enhancement biases; asking each pair twice with the answers
swapped exposes the first. `judge_pairs` reads the verdict from the next-token logits of "A" and "B" after
the question (no sampling, so it repeats exactly); `judge_summary` counts agreement with the rule that
made the pairs, how often the verdict flips with the order, and how often the longer answer wins.
`course judge` runs it on the held-out on-policy pairs and writes data/results/judge.json.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from typing import Sequence

import torch

from course_lib.models.loading import load_base_model, load_tokenizer
from course_lib.tuning import sft
from course_lib.tuning.pairs import on_policy_rows

__all__ = ["JUDGE_QUESTION", "judge_prompt", "verdict_tokens", "judge_pairs", "judge_summary", "JudgeConfig",
           "judge_run"]

JUDGE_QUESTION = ("Two one-line docstrings were written for this Python function:\n\n{function}\n\n"
                  "A: {a}\nB: {b}\n\nWhich docstring is better, A or B? Answer with one letter.")


def judge_prompt(tokenizer, pair: dict, chosen_first: bool) -> str:
    """The judge's chat prompt for one pair, chosen shown as A (chosen_first) or as B, ending with the answer header."""
    function = re.sub(r"^Explain what the Python function (`[^`]+`) does\.\s*", r"\1\n", pair["prompt"])
    a, b = (pair["chosen"], pair["rejected"]) if chosen_first else (pair["rejected"], pair["chosen"])
    question = JUDGE_QUESTION.format(function=function.strip(), a=a, b=b)
    return tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                         add_generation_prompt=True)


def verdict_tokens(tokenizer) -> tuple[int, int]:
    """The ids of the one-token answers "A" and "B"."""
    ids = [tokenizer(x, add_special_tokens=False)["input_ids"] for x in ("A", "B")]
    if any(len(i) != 1 for i in ids):
        raise ValueError("the judge reads one-token answers, and this tokenizer splits 'A' or 'B'")
    return ids[0][0], ids[1][0]


@torch.no_grad()
def judge_pairs(model, tokenizer, pairs: Sequence[dict], batch_size: int = 8) -> list[dict]:
    """For each pair and each order, the judge's P(A) against P(B) (softmax over the two letters' logits).

    Returns one dict per pair: p_a_chosen_first (chosen shown as A) and p_a_chosen_second (chosen shown as B).
    """
    a_id, b_id = verdict_tokens(tokenizer)
    side, tokenizer.padding_side = tokenizer.padding_side, "left"  # the last position is every row's next token
    was_training = model.training
    model.eval()
    texts = [judge_prompt(tokenizer, p, first) for p in pairs for first in (True, False)]
    probs = []
    try:
        for i in range(0, len(texts), batch_size):
            enc = tokenizer(texts[i:i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
            positions = (enc["attention_mask"].cumsum(1) - 1).clamp(min=0)  # as if unpadded: left padding shifts none
            logits = model(**enc, position_ids=positions).logits[:, -1, [a_id, b_id]].float()  # (b, 2): "A", "B"
            probs += logits.softmax(-1)[:, 0].tolist()
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return [{"p_a_chosen_first": probs[2 * i], "p_a_chosen_second": probs[2 * i + 1]} for i in range(len(pairs))]


def judge_summary(verdicts: Sequence[dict], pairs: Sequence[dict]) -> dict:
    """What the judge did, over the pairs.

    A verdict is "A" when P(A) > P(B). consistent: the same answer wins in both orders; agreement: consistent
    and the rule's chosen answer; flip_rate: the winner changes with the order (the judge picked a position);
    first_position_rate: share of all verdicts that are "A"; agreement_ties_half: agreement counting an
    inconsistent pair as a tie (Zheng et al. 2023); longer_wins: among consistent verdicts, share for the
    answer with more words; leans_to_chosen: share of pairs where P(A) is higher with the chosen answer as A
    than as B — the position preference cancels in that difference, whatever its size.
    """
    n = len(verdicts)
    first = [v["p_a_chosen_first"] > 0.5 for v in verdicts]  # "A" = chosen
    second = [v["p_a_chosen_second"] > 0.5 for v in verdicts]  # "A" = rejected
    chosen_wins = [f and not s for f, s in zip(first, second)]
    rejected_wins = [s and not f for f, s in zip(first, second)]
    consistent = sum(chosen_wins) + sum(rejected_wins)
    longer = [len(p["chosen"].split()) > len(p["rejected"].split()) if c else
              len(p["rejected"].split()) > len(p["chosen"].split()) for p, c, r in zip(pairs, chosen_wins, rejected_wins)
              if c or r]
    return {"pairs": n, "agreement": sum(chosen_wins) / n, "disagreement": sum(rejected_wins) / n,
            "flip_rate": (n - consistent) / n, "agreement_among_consistent": sum(chosen_wins) / consistent if consistent else None,
            "agreement_ties_half": (sum(chosen_wins) + 0.5 * (n - consistent)) / n,
            "first_position_rate": (sum(first) + sum(second)) / (2 * n),
            "longer_wins": sum(longer) / len(longer) if longer else None,
            "leans_to_chosen": sum(v["p_a_chosen_first"] > v["p_a_chosen_second"] for v in verdicts) / n}


@dataclass
class JudgeConfig:
    """What `course judge` asks: the untuned local model judging the held-out on-policy pairs."""

    split: str = field(default="test", metadata={"help": "which on-policy pairs (data/preferences-on-policy)"})
    batch_size: int = field(default=8, metadata={"help": "judge prompts per forward pass"})
    out: str = field(default="", metadata={"help": "results file; '' = data/results/judge.json"})


def judge_run(config: JudgeConfig | None = None, model_name: str | None = None) -> dict:
    """Judge every pair of the split in both orders with the untuned model (not lesson 06's: no self-judging)."""
    config = config or JudgeConfig()
    model_name = model_name or sft.lesson_model()
    start = time.perf_counter()
    pairs = on_policy_rows(config.split)
    verdicts = judge_pairs(load_base_model(model_name).eval(), load_tokenizer(model_name), pairs, config.batch_size)
    return {"config": {k: v for k, v in asdict(config).items() if k != "out"}, "model": model_name,
            "summary": judge_summary(verdicts, pairs), "verdicts": verdicts,
            "wall_seconds": round(time.perf_counter() - start, 1)}
