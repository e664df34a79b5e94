"""`course forgetting`: every lever against forgetting, fine-tuned and measured over several seeds (lesson 05).

`run_one` is one configuration for one seed, the call lesson 05 repeats live; `run_experiment`
runs every configuration (`default_runs`) and returns what `course forgetting` writes.

On a model bigger than course-tiny (`course forgetting --model smollm2-135m-instruct`) two things
change, both recorded in the results file: `scaled_config` shrinks the runs (shorter rows, fewer rows
and steps, fewer evaluation texts) so they cost about `--compute` times course-tiny's, and
`learning_rates` picks the model's own learning rates instead of course-tiny's.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from course_lib.data.encoding import TokenizedOnDemand, collator_for, tokenize_causal
from course_lib.doctor import versions_line
from course_lib.data.datasets import prompt_of
from course_lib.forgetting.ewc import EWCPenalty, fisher_diagonal
from course_lib.forgetting.measuring import TaskData, forgetting, load_task_data, measure, summarize, target_gain
from course_lib.training.freezing import set_trainable_groups
from course_lib.forgetting.generation import GENERAL_PROMPTS, RetentionReference, greedy_answers, retention, retention_reference
from course_lib.metrics import mean_nll
from course_lib.models.base import COURSE_TINY, count_parameters, get_device, model_name, set_seed
from course_lib.models.loading import load_base_model, load_tokenizer
from course_lib.forgetting.replay import replay_batches
from course_lib.results import command_line, results_name, save_results
from course_lib.training.loop import TrainConfig, train
from course_lib.training.sizing import COURSE_TINY_PARAMS, shrink_run

__all__ = ["RunSpec", "LearningRates", "LEARNING_RATES", "learning_rates", "ExperimentConfig", "default_runs",
           "SCALED_RUNS", "scaled_config", "peft_lora", "curve_point", "run_one", "run_experiment", "COMMANDS"]


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


@dataclass(frozen=True)
class LearningRates:
    """Peak learning rates of one model for full fine-tuning and for LoRA, and why (lesson 05)."""

    full: float
    lora: float
    params: int  # the model's parameter count: `learning_rates` picks the nearest entry for an unknown model
    why: str


LEARNING_RATES = {
    COURSE_TINY: LearningRates(1e-3, 3e-3, COURSE_TINY_PARAMS, "half course-tiny's pre-training peak (2e-3); LoRA 3x"),
    "smollm2-135m-instruct": LearningRates(
        5e-5, 5e-4, 134_515_008, "not tuned here: full fine-tuning at 5e-5, 20x below course-tiny's, in the "
        "1e-5..1e-4 range usual for fully fine-tuning pretrained models; LoRA 10x higher (its B starts at zero)"),
}


def learning_rates(model_name: str, n_params: int) -> LearningRates:
    """The model's entry in LEARNING_RATES, else the entry whose parameter count is nearest (lesson 05)."""
    if model_name in LEARNING_RATES:
        return LEARNING_RATES[model_name]
    return min(LEARNING_RATES.values(), key=lambda r: abs(math.log(r.params / n_params)))


def default_runs(task_b_steps: int = 40, rates: LearningRates = LEARNING_RATES[COURSE_TINY]) -> list[RunSpec]:
    """The configurations `course forgetting` runs by default; "A then B" trains on B for `task_b_steps`."""
    return [RunSpec("full", learning_rate=rates.full), RunSpec("full, lr/10", learning_rate=rates.full / 10),
            *[RunSpec(f"LoRA r={r}", method="lora", lora_r=r, learning_rate=rates.lora) for r in (1, 4, 16, 64)],
            RunSpec("top block only", method="top", top_layers=1, learning_rate=rates.full),
            RunSpec("full + replay 25%", replay_fraction=0.25, learning_rate=rates.full),
            RunSpec("full + EWC", ewc_lambda=1e4, learning_rate=rates.full),
            RunSpec("A then B", task_b_steps=task_b_steps, learning_rate=rates.full)]


# The configurations of a scaled run (a model bigger than course-tiny): the four levers, without the rank sweep
SCALED_RUNS = ("full", "full, lr/10", "LoRA r=16", "full + replay 25%", "full + EWC")


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
                                                           "(the final measure uses all); 0 = no curve"})
    fisher_samples: int = field(default=64, metadata={"help": "old-text sequences the EWC Fisher averages over"})
    answer_prompts: int = field(default=8, metadata={"help": "task-A prompts answered greedily after A and "
                                                             "after B (sequential run)"})
    out: str = field(default="", metadata={"help": "output file; '' means data/results/forgetting.json "
                                                   "(course-tiny) or data/results/forgetting_<model>.json"})
    model: str = field(default="", metadata={"help": "a named model or folder; '' means $COURSE_MODEL or "
                                                     "course-tiny"})
    eval_texts: int = field(default=0, metadata={"help": "texts of each set in the final measure; 0 = all"})
    probe_prompts: int = field(default=0, metadata={"help": "held-out general questions of the retention probe "
                                                            "(greedy answers before vs after); 0 = no probe"})
    probe_tokens: int = field(default=16, metadata={"help": "longest greedy answer of the retention probe"})
    configurations: str = field(default="", metadata={"help": "';'-separated names of the configurations to "
                                                              "run; '' = all (course-tiny) or SCALED_RUNS"})
    compute: float = field(default=2.5, metadata={"help": "on a model bigger than course-tiny: shrink each run "
                                                          "to cost about this many times course-tiny's; 0 = "
                                                          "run the settings as given"})


def scaled_config(config: ExperimentConfig, n_params: int, compute: float = 1.0,
                  floors: tuple[int, int, int] = (64, 8, 4), min_texts: int = 16) -> ExperimentConfig:
    """A copy of `config` shrunk so a run on an `n_params` model costs ~`compute` × `config` on course-tiny.

    The tokens shrink by course_lib.training.sizing's one rule (`shrink_run`): rows are cut first (not under
    64 tokens: an instruction row must keep its response), then fewer rows per step (not under 8), then
    fewer steps (not under 4); the evaluation texts shrink by the factor left after cutting rows. A model
    no bigger than course-tiny gets `config` unchanged.
    """
    length, batch, steps, factor = shrink_run(config.max_length, config.per_device_train_batch_size,
                                              config.max_steps, n_params, compute, floors)
    if factor <= 1:
        return dataclasses.replace(config)
    eval_factor = factor * length / config.max_length
    texts = lambda n: max(min_texts, round(n / eval_factor))  # noqa: E731
    return dataclasses.replace(config, max_length=length, per_device_train_batch_size=batch, max_steps=steps,
                               eval_steps=max(1, steps // 2),
                               curve_texts=texts(config.curve_texts) if config.curve_texts else 0,
                               eval_texts=texts(config.eval_texts or 150),
                               fisher_samples=texts(config.fisher_samples))


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


def curve_point(model, tokenizer, data: TaskData, config: ExperimentConfig) -> dict[str, float]:
    """One point of a run's curves: target and general loss (nats/token) on the first `curve_texts` texts."""
    n = config.curve_texts
    return {"target_nll": mean_nll(model, tokenizer, data.target_val[:n], config.max_length),
            "general_nll": mean_nll(model, tokenizer, data.general[:n], config.max_length)}


def run_one(base_model, tokenizer, data: TaskData, spec: RunSpec, seed: int, config: ExperimentConfig,
            base: dict[str, float], fisher: dict[str, torch.Tensor] | None = None,
            reference: RetentionReference | None = None) -> dict:
    """Fine-tune a copy of `base_model` as `spec` says; its numbers relative to `base` (= measure of the base).

    With a retention `reference` (the base model's answers, `retention_reference`) the run also reports
    `kept` and `logprob_change` of the retention probe.
    """
    set_seed(seed)  # LoRA's A matrices are initialised here
    model = _prepare(copy.deepcopy(base_model), spec)
    collate = collator_for(tokenizer, "causal-lm")
    rows = TokenizedOnDemand(tokenizer, data.target_train, config.max_length)  # only the rows drawn get tokenized
    point = (lambda m: curve_point(m, tokenizer, data, config)) if config.curve_texts else None  # noqa: E731

    tc = TrainConfig(learning_rate=spec.learning_rate, max_steps=config.max_steps, seed=seed, disable_tqdm=True,
                     per_device_train_batch_size=config.per_device_train_batch_size, eval_steps=config.eval_steps)
    batches = None
    if spec.replay_fraction:
        old = TokenizedOnDemand(tokenizer, data.replay, config.max_length)
        batches = replay_batches(rows, old, spec.replay_fraction, config.per_device_train_batch_size, collate, seed)
    penalty = EWCPenalty(model, fisher, spec.ewc_lambda) if spec.ewc_lambda and fisher else None
    history = train(model, rows, tc, collate_fn=collate, evaluate=point, extra_loss=penalty, batches=batches)
    after = measure(model, tokenizer, data, config.max_length, task_b=bool(spec.task_b_steps),
                    max_texts=config.eval_texts)
    result = {"name": spec.name, "seed": seed, **asdict(spec),
              "trainable_params": count_parameters(model, trainable_only=True), **after,
              "gain": target_gain(base["target_ppl"], after["target_ppl"]),
              "forgetting": forgetting(base["general_ppl"], after["general_ppl"]),
              "acc_drop": base["general_acc"] - after["general_acc"],
              "curve": {"step": history.eval_step, "target_nll": history.eval_metric("target_nll"),
                        "general_nll": history.eval_metric("general_nll")},
              "train_loss": history.loss}
    if reference is not None:
        probe = retention(model, tokenizer, reference)
        result.update(kept=probe["kept"], logprob_change=probe["logprob_change"], probe_answers=probe["answers"])
    if spec.task_b_steps:  # sequential: now task B, then how much of A is left
        rows_b = tokenize_causal(tokenizer, data.task_b_train, config.max_length)
        tc_b = TrainConfig(learning_rate=spec.learning_rate, max_steps=spec.task_b_steps, seed=seed + 1000,
                           per_device_train_batch_size=config.per_device_train_batch_size, disable_tqdm=True)
        prompts = [prompt_of(t) for t in data.target_val[:config.answer_prompts]]
        result["answers_after_a"] = greedy_answers(model, tokenizer, prompts)
        train(model, rows_b, tc_b, collate_fn=collate)
        after_b = measure(model, tokenizer, data, config.max_length, max_texts=config.eval_texts)
        result["answers_after_b"] = greedy_answers(model, tokenizer, prompts)
        result["after_b"] = after_b
        result["drop_on_a"] = math.log(after_b["target_ppl"]) - math.log(after["target_ppl"])  # > 0: A got worse
        result["forgetting_after_b"] = forgetting(base["general_ppl"], after_b["general_ppl"])
    return result



def run_experiment(model, tokenizer, data: TaskData, config: ExperimentConfig,
                   runs: list[RunSpec] | None = None, log: Callable[[str], None] | None = print,
                   on_run: Callable[[dict], None] | None = None) -> dict:
    """Every run (default: `default_runs`) over every seed, as the dict `course forgetting` writes.

    on_run(results so far) is called after each run (`course forgetting` saves them: a long run stopped
    early keeps what it finished).
    """

    runs = default_runs(config.max_steps) if runs is None else runs
    start = time.perf_counter()
    model = model.to(get_device())
    base = measure(model, tokenizer, data, config.max_length, max_texts=config.eval_texts)
    start_point = curve_point(model, tokenizer, data, config) if config.curve_texts else {}
    fisher = None
    if any(s.ewc_lambda for s in runs):
        old = tokenize_causal(tokenizer, data.replay[:config.fisher_samples], config.max_length)
        fisher = fisher_diagonal(model, old, collator_for(tokenizer, "causal-lm"))
    reference = None
    if config.probe_prompts:
        reference = retention_reference(model, tokenizer, GENERAL_PROMPTS[:config.probe_prompts],
                                        config.probe_tokens)
    name = str(getattr(model, "name_or_path", ""))
    base_probe = {} if reference is None else {"probe": {
        "questions": reference.questions, "logprobs": reference.logprobs,
        "answers": [tokenizer.decode(a, skip_special_tokens=True).strip() for a in reference.answers]}}

    def payload(records: list[dict]) -> dict:
        return {"meta": {"model": Path(name).name if Path(name).is_dir() else name, "versions": versions_line(),
                         "machine": platform.machine(), "threads": torch.get_num_threads(),
                         "seconds": round(time.perf_counter() - start, 1), "command": "course forgetting",
                         "config": {**asdict(config), "runs": [asdict(s) for s in runs]},
                         "sign_convention": "gain = ln PPL_target before - after; forgetting = ln PPL_general "
                                            "after - before; both nats/token, > 0 = learned / forgot"},
                "base": {**base, "curve": start_point, **base_probe}, "runs": records}

    records = []
    for seed in config.seeds:  # seed by seed: a run stopped early has every configuration for its first seeds
        for spec in runs:
            t0 = time.perf_counter()
            records.append(run_one(model, tokenizer, data, spec, seed, config, base, fisher, reference))
            if log:
                r = records[-1]
                probe = f"  kept {r['kept']:.0%}  Δ log-prob {r['logprob_change']:+.3f}" if reference else ""
                log(f"{spec.name:20s} seed {seed}: gain {r['gain']:+.3f}  forgetting {r['forgetting']:+.3f}"
                    f"{probe}  ({time.perf_counter() - t0:.0f} s)")
            if on_run:
                on_run(payload(records))
    return payload(records)


def _run(config: ExperimentConfig) -> int:
    command = command_line("forgetting", config)
    name = model_name(config.model)
    model = load_base_model(name)
    n_params = count_parameters(model)
    rates = learning_rates(name, n_params)
    scaled = n_params > COURSE_TINY_PARAMS and config.compute > 0
    if scaled:
        config = scaled_config(config, n_params, config.compute)
    chosen = config.configurations or (";".join(SCALED_RUNS) if scaled else "")
    runs = default_runs(config.max_steps, rates)
    if chosen:
        wanted = [c.strip() for c in chosen.split(";")]
        unknown = sorted(set(wanted) - {s.name for s in runs})
        if unknown:
            raise ValueError(f"unknown configurations {unknown}; choose among {[s.name for s in runs]}.")
        runs = [s for s in runs if s.name in wanted]
    print(f"{name}: {n_params:,} parameters; learning rates full {rates.full:g}, LoRA {rates.lora:g} ({rates.why}); "
          f"{config.max_steps} steps x {config.per_device_train_batch_size} rows x {config.max_length} tokens",
          flush=True)
    meta = {"model": name, "parameters": n_params, "learning_rates": asdict(rates), "command": command,
            "scaled_from": ({"reference": COURSE_TINY, "reference_parameters": COURSE_TINY_PARAMS,
                             "compute": config.compute} if scaled else None)}
    default_out = results_name("forgetting", name)
    total = len(runs) * len(config.seeds)

    def save(results: dict) -> Path:  # after every run, so that a run stopped early keeps what it finished
        results["meta"].update(meta, complete=len(results["runs"]) == total)
        return save_results(default_out, {"model": name, "command": command, **results}, out=config.out or None)

    results = run_experiment(model, load_tokenizer(name), load_task_data(), config, runs,
                             log=lambda line: print(line, flush=True), on_run=save)
    path = save(results)
    print(f"base: general PPL {results['base']['general_ppl']:.2f}, target PPL {results['base']['target_ppl']:.2f}")
    for run_name, s in summarize(results).items():
        probe = f"   kept {s['kept'][0]:.0%} ± {s['kept'][1]:.0%}" if "kept" in s else ""
        print(f"{run_name:20s} gain {s['gain'][0]:+.3f} ± {s['gain'][1]:.3f}   "
              f"forgetting {s['forgetting'][0]:+.3f} ± {s['forgetting'][1]:.3f}{probe}")
    print(f"wrote {path} in {results['meta']['seconds']:.0f} s")
    return 0


COMMANDS = {"forgetting": ("lesson 05: fine-tune course-tiny (or --model) under every forgetting configuration "
                           "over 3 seeds -> data/results/forgetting.json (about 20 min on 2 cores)",
                           (ExperimentConfig,), _run)}
