"""Catastrophic forgetting as two numbers, and the data they are measured on (lesson 05).

Two numbers per fine-tuned model, both in nats per token, both "bigger = more":
- target gain  = ln PPL_target(before) − ln PPL_target(after): how much the target was learned;
- forgetting   = ln PPL_general(after) − ln PPL_general(before): how much worse the model got at
  general text it never trained on (data/general). Positive means it forgot; 0 means no change.
A skill probe sits beside perplexity: top-1 next-token accuracy on the same general text. On a real
model, a retention probe (`course_lib.forgetting.generation.retention`) adds what it *says*: the share of its own
greedy answers to held-out general questions that survive fine-tuning, and their change in log-probability.

The levers that reduce forgetting are their own modules: `course_lib.forgetting.replay`, `course_lib.forgetting.ewc`,
LoRA (peft), `course_lib.training.freezing` and the learning rate; `course_lib.experiments.forgetting`
(`course forgetting`) runs them all over several seeds.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Sequence

from course_lib.data.datasets import area_text, instruction_text, load_course_dataset
from course_lib.metrics import mean_nll, next_token_accuracy

__all__ = ["forgetting", "target_gain", "TaskData", "load_task_data", "measure", "summarize"]


def forgetting(ppl_before: float, ppl_after: float) -> float:
    """ln(PPL_after / PPL_before) on general text, nats/token; > 0 means the model forgot (lesson 05)."""
    return math.log(ppl_after) - math.log(ppl_before)


def target_gain(ppl_before: float, ppl_after: float) -> float:
    """ln(PPL_before / PPL_after) on the target's validation set; > 0 means it learned (lesson 05)."""
    return math.log(ppl_before) - math.log(ppl_after)


@dataclass
class TaskData:
    """The texts of one forgetting experiment (lesson 05)."""

    target_train: list[str]  # task A: what we fine-tune on
    target_val: list[str]  # task A, held out: the target's perplexity
    general: list[str]  # the yardstick: held-out general text, never trained on
    replay: list[str]  # old text (pre-training corpus) for replay and the Fisher; never the yardstick
    task_b_train: list[str] = field(default_factory=list)  # task B, for sequential fine-tuning
    task_b_val: list[str] = field(default_factory=list)


def load_task_data(max_replay: int = 2000, max_val: int = 150) -> TaskData:
    """Task A = the instruction set, task B = area labelling, general = data/general, replay = corpus."""
    alpaca = load_course_dataset("alpaca")
    cls = load_course_dataset("classification")
    corpus = load_course_dataset("corpus", "train")
    return TaskData(target_train=[instruction_text(r) for r in alpaca["train"]],
                    target_val=[instruction_text(r) for r in alpaca["validation"]][:max_val],
                    general=list(load_course_dataset("general", "test")["text"]),
                    replay=list(corpus["text"][:max_replay]),
                    task_b_train=[area_text(r) for r in cls["train"]],
                    task_b_val=[area_text(r) for r in cls["validation"]][:max_val])


def measure(model, tokenizer, data: TaskData, max_length: int = 128, task_b: bool = True,
            max_texts: int = 0) -> dict[str, float]:
    """General perplexity and next-token accuracy, target perplexity (and task B's) of one model (lesson 05).

    max_texts > 0 scores only the first `max_texts` texts of each set (a reduced run on a bigger model).
    """
    cut = slice(max_texts or None)
    general = data.general[cut]
    out = {"general_ppl": math.exp(mean_nll(model, tokenizer, general, max_length)),
           "general_acc": next_token_accuracy(model, tokenizer, general, max_length),
           "target_ppl": math.exp(mean_nll(model, tokenizer, data.target_val[cut], max_length))}
    if task_b and data.task_b_val:
        out["task_b_ppl"] = math.exp(mean_nll(model, tokenizer, data.task_b_val[cut], max_length))
    return out


def summarize(results: dict, keys: Sequence[str] = ("gain", "forgetting", "acc_drop", "kept", "logprob_change")
              ) -> dict[str, dict]:
    """By configuration name: {key: (mean, sample std over seeds)} for each key the runs have (lesson 05)."""
    by_name: dict[str, list[dict]] = {}
    for run in results["runs"]:
        by_name.setdefault(run["name"], []).append(run)
    out = {}
    for name, runs in by_name.items():
        out[name] = {"seeds": len(runs)}
        for k in keys:
            values = [r[k] for r in runs if k in r]
            if values:
                out[name][k] = (statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0)
    return out
