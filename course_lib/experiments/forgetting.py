"""`course forgetting`: every lever against forgetting, fine-tuned and measured over several seeds (lesson 05).

`run_one` is one configuration for one seed, the call lesson 05 repeats live; `run_experiment`
runs every configuration (`default_runs`) and returns what `course forgetting` writes.
"""

from __future__ import annotations

import copy
import math
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from course_lib.encoding import collator_for, tokenize_causal
from course_lib.data import prompt_of
from course_lib.ewc import EWCPenalty, fisher_diagonal
from course_lib.forgetting import TaskData, forgetting, load_task_data, measure, summarize, target_gain
from course_lib.freezing import set_trainable_groups
from course_lib.generation import greedy_answers
from course_lib.metrics import mean_nll
from course_lib.models import count_parameters, get_device, set_seed
from course_lib.replay import replay_batches
from course_lib.results import save_results
from course_lib.training import TrainConfig, train

__all__ = ["RunSpec", "ExperimentConfig", "default_runs", "peft_lora", "run_one", "run_experiment", "COMMANDS"]


@dataclass
class RunSpec:
    """One configuration of the experiment: what trains and which mitigations are on (lesson 05)."""

    name: str
    method: str = "full"  # "full" | "lora" | "top" (only the top `top_layers` blocks train)
    learning_rate: float = 1e-3  # course-tiny was pretrained at a 2e-3 peak
    lora_r: int = 8  # with method="lora"
    top_layers: int = 1  # with method="top": how many top blocks train (embeddings stay frozen)
    replay_fraction: float = 0.0  # share of each batch taken from old text (pre-training corpus)
    ewc_lambda: float = 0.0  # EWC strength λ; 0 disables it
    task_b_steps: int = 0  # > 0: then fine-tune on task B this many steps (sequential fine-tuning)


def default_runs(task_b_steps: int = 40) -> list[RunSpec]:
    """The configurations `course forgetting` runs by default; "A then B" trains on B for `task_b_steps`."""
    return [RunSpec("full"), RunSpec("full, lr/10", learning_rate=1e-4),
            *[RunSpec(f"LoRA r={r}", method="lora", lora_r=r, learning_rate=3e-3) for r in (1, 4, 16, 64)],
            RunSpec("top block only", method="top", top_layers=1),
            RunSpec("full + replay 25%", replay_fraction=0.25),
            RunSpec("full + EWC", ewc_lambda=1e4),
            RunSpec("A then B", task_b_steps=task_b_steps)]


@dataclass
class ExperimentConfig:
    """Settings shared by every run of `run_experiment` (the options of `course forgetting`)."""

    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "every configuration runs "
                                                                                  "once per seed"})
    max_steps: int = field(default=40, metadata={"help": "optimizer steps on task A (640 rows, about a quarter "
                                                         "of an epoch), and on task B in the sequential run"})
    per_device_train_batch_size: int = field(default=16, metadata={"help": "rows per step"})
    max_length: int = field(default=128, metadata={"help": "tokens per row (longer rows are cut)"})
    eval_steps: int = field(default=10, metadata={"help": "a curve point every this many steps"})
    curve_texts: int = field(default=50, metadata={"help": "texts of each set scored at each curve point "
                                                           "(the final measure uses all)"})
    fisher_samples: int = field(default=64, metadata={"help": "old-text sequences the EWC Fisher averages over"})
    answer_prompts: int = field(default=8, metadata={"help": "task-A prompts answered greedily after A and "
                                                             "after B (sequential run)"})
    out: str = field(default="", metadata={"help": "output file; '' means data/results/forgetting.json"})


def peft_lora(model: torch.nn.Module, r: int, alpha_per_rank: float = 2.0) -> torch.nn.Module:
    """peft LoRA on every linear layer of the body, lora_alpha = 2·r so every rank has scaling 2."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=r, lora_alpha=alpha_per_rank * r, lora_dropout=0.0, target_modules="all-linear",
                        task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def _prepare(model, spec: RunSpec):
    if spec.method == "lora":
        return peft_lora(model, spec.lora_r)
    if spec.method == "top":  # groups: embeddings (tied to the head), block 0, ..., top block + final norm
        set_trainable_groups(model, spec.top_layers)
        return model
    if spec.method != "full":
        raise ValueError(f"method must be 'full', 'lora' or 'top', not {spec.method!r}.")
    return model


def run_one(base_model, tokenizer, data: TaskData, spec: RunSpec, seed: int, config: ExperimentConfig,
            base: dict[str, float], fisher: dict[str, torch.Tensor] | None = None) -> dict:
    """Fine-tune a copy of `base_model` as `spec` says; its numbers relative to `base` (= measure of the base)."""
    set_seed(seed)  # LoRA's A matrices are initialised here
    model = _prepare(copy.deepcopy(base_model), spec)
    collate = collator_for(tokenizer, "causal-lm")
    rows = tokenize_causal(tokenizer, data.target_train, config.max_length)
    n = config.curve_texts

    def curve_point(m) -> dict[str, float]:
        return {"target_nll": mean_nll(m, tokenizer, data.target_val[:n], config.max_length),
                "general_nll": mean_nll(m, tokenizer, data.general[:n], config.max_length)}

    tc = TrainConfig(learning_rate=spec.learning_rate, max_steps=config.max_steps, seed=seed, disable_tqdm=True,
                     per_device_train_batch_size=config.per_device_train_batch_size, eval_steps=config.eval_steps)
    batches = None
    if spec.replay_fraction:
        old = tokenize_causal(tokenizer, data.replay, config.max_length)
        batches = replay_batches(rows, old, spec.replay_fraction, config.per_device_train_batch_size, collate, seed)
    penalty = EWCPenalty(model, fisher, spec.ewc_lambda) if spec.ewc_lambda and fisher else None
    history = train(model, rows, tc, collate_fn=collate, evaluate=curve_point, extra_loss=penalty, batches=batches)
    after = measure(model, tokenizer, data, config.max_length, task_b=bool(spec.task_b_steps))
    result = {"name": spec.name, "seed": seed, **asdict(spec),
              "trainable_params": count_parameters(model, trainable_only=True), **after,
              "gain": target_gain(base["target_ppl"], after["target_ppl"]),
              "forgetting": forgetting(base["general_ppl"], after["general_ppl"]),
              "acc_drop": base["general_acc"] - after["general_acc"],
              "curve": {"step": history.eval_step, "target_nll": history.eval_metric("target_nll"),
                        "general_nll": history.eval_metric("general_nll")},
              "train_loss": history.loss}
    if spec.task_b_steps:  # sequential: now task B, then how much of A is left
        rows_b = tokenize_causal(tokenizer, data.task_b_train, config.max_length)
        tc_b = TrainConfig(learning_rate=spec.learning_rate, max_steps=spec.task_b_steps, seed=seed + 1000,
                           per_device_train_batch_size=config.per_device_train_batch_size, disable_tqdm=True)
        prompts = [prompt_of(t) for t in data.target_val[:config.answer_prompts]]
        result["answers_after_a"] = greedy_answers(model, tokenizer, prompts)
        train(model, rows_b, tc_b, collate_fn=collate)
        after_b = measure(model, tokenizer, data, config.max_length)
        result["answers_after_b"] = greedy_answers(model, tokenizer, prompts)
        result["after_b"] = after_b
        result["drop_on_a"] = math.log(after_b["target_ppl"]) - math.log(after["target_ppl"])  # > 0: A got worse
        result["forgetting_after_b"] = forgetting(base["general_ppl"], after_b["general_ppl"])
    return result



def run_experiment(model, tokenizer, data: TaskData, config: ExperimentConfig,
                   runs: list[RunSpec] | None = None, log: Callable[[str], None] | None = print) -> dict:
    """Every run (default: `default_runs`) over every seed, as the dict `course forgetting` writes."""
    from course_lib.doctor import versions_line

    runs = default_runs(config.max_steps) if runs is None else runs
    start = time.perf_counter()
    model = model.to(get_device())
    base = measure(model, tokenizer, data, config.max_length)
    n = config.curve_texts
    base_curve = {"target_nll": mean_nll(model, tokenizer, data.target_val[:n], config.max_length),
                  "general_nll": mean_nll(model, tokenizer, data.general[:n], config.max_length)}
    fisher = None
    if any(s.ewc_lambda for s in runs):
        old = tokenize_causal(tokenizer, data.replay[:config.fisher_samples], config.max_length)
        fisher = fisher_diagonal(model, old, collator_for(tokenizer, "causal-lm"))
    records = []
    for spec in runs:
        for seed in config.seeds:
            t0 = time.perf_counter()
            records.append(run_one(model, tokenizer, data, spec, seed, config, base, fisher))
            if log:
                r = records[-1]
                log(f"{spec.name:20s} seed {seed}: gain {r['gain']:+.3f}  forgetting {r['forgetting']:+.3f}  "
                    f"({time.perf_counter() - t0:.0f} s)")
    name = str(getattr(model, "name_or_path", ""))
    return {"meta": {"model": Path(name).name if Path(name).is_dir() else name, "versions": versions_line(),
                     "machine": platform.machine(), "threads": torch.get_num_threads(),
                     "seconds": round(time.perf_counter() - start, 1), "command": "course forgetting",
                     "config": {**asdict(config), "runs": [asdict(s) for s in runs]},
                     "sign_convention": "gain = ln PPL_target before - after; forgetting = ln PPL_general "
                                        "after - before; both nats/token, > 0 = learned / forgot"},
            "base": {**base, "curve": base_curve}, "runs": records}


def _run(config: ExperimentConfig) -> int:
    from course_lib.models import load_base_model, load_tokenizer

    results = run_experiment(load_base_model(), load_tokenizer(), load_task_data(), config)
    path = save_results("forgetting", results, out=config.out or None)
    print(f"base: general PPL {results['base']['general_ppl']:.2f}, target PPL {results['base']['target_ppl']:.2f}")
    for name, s in summarize(results).items():
        print(f"{name:20s} gain {s['gain'][0]:+.3f} ± {s['gain'][1]:.3f}   "
              f"forgetting {s['forgetting'][0]:+.3f} ± {s['forgetting'][1]:.3f}")
    print(f"wrote {path} in {results['meta']['seconds']:.0f} s")
    return 0


COMMANDS = {"forgetting": ("lesson 05: fine-tune course-tiny under every forgetting configuration over 3 seeds "
                           "-> data/results/forgetting.json (about 20 min on 2 cores)", (ExperimentConfig,), _run)}
