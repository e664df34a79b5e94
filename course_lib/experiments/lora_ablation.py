"""`course lora-ablation`: LoRA at several ranks, two scalings and two target sets (lesson 03).

`lora_run` is one point: the lesson calls it live with a reduced config, the command repeats it
for every rank, scaling and seed, and for the fixed-parameter-budget comparison (LoRA paper,
Table 5). With `--model` naming another model the file is data/results/lora_rank_ablation_<model>.json.
A fixed `lora_alpha` would change the update's scale alpha / r with the rank, so the
rank is compared under scalings that do not shrink with r that way: alpha = 2r (alpha / r = 2
at every rank) and rsLoRA's alpha / sqrt(r) (Kalajdzievski 2023; peft's `use_rslora=True`).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field

from course_lib.data.datasets import instruction_text, load_course_dataset
from course_lib.data.encoding import TokenizedOnDemand, collator_for
from course_lib.tuning.lora import ALL_LINEAR_TARGETS, ATTENTION_TARGETS, LoraConfig, add_lora
from course_lib.metrics import perplexity
from course_lib.models.base import count_parameters, model_name, set_seed
from course_lib.models.loading import load_base_model, load_tokenizer
from course_lib.results import command_line, results_name, save_results
from course_lib.training.loop import TrainConfig, train

__all__ = ["SCALINGS", "AblationConfig", "lora_config", "lora_run", "rank_ablation", "summarize", "COMMANDS"]

# scaling name -> how lora_alpha follows the rank r (peft's names: lora_alpha, use_rslora)
SCALINGS = {
    "fixed_alpha": "lora_alpha fixed: the update is scaled by alpha / r, smaller at every higher rank",
    "alpha_2r": "lora_alpha = 2r: alpha / r = 2 at every rank",
    "rslora": "use_rslora=True, lora_alpha fixed: scaled by alpha / sqrt(r) (Kalajdzievski 2023)",
}


@dataclass
class AblationConfig:
    """What `course lora-ablation` runs: LoRA on the alpaca set, one run per rank, scaling and seed."""

    model: str = field(default="", metadata={"help": "a model name or folder; '' means $COURSE_MODEL or course-tiny"})
    ranks: list[int] = field(default_factory=lambda: [1, 4, 16, 64],
                             metadata={"help": "ranks of attention-only LoRA (q, k, v, o)"})
    scalings: list[str] = field(default_factory=lambda: ["alpha_2r", "rslora"],
                                metadata={"help": f"how lora_alpha follows r: {', '.join(SCALINGS)}"})
    lora_alpha: float = field(default=16.0, metadata={"help": "lora_alpha of the fixed_alpha scaling"})
    rslora_alpha: float = field(default=4.0, metadata={"help": "lora_alpha of the rslora scaling: 4 / sqrt(r) "
                                                                 "equals alpha_2r's 2 at r = 4"})
    budget_rank_attention: int = field(default=20, metadata={"help": "attention-only at this rank has exactly "
                                                                     "the parameters of ..."})
    budget_rank_all_linear: int = field(default=8, metadata={"help": "... all-linear at this rank on course-tiny "
                                                                     "(81,920): Table 5's fixed budget"})
    budget_scaling: str = field(default="alpha_2r", metadata={"help": "the scaling of the fixed-budget runs"})
    budget: bool = field(default=True, metadata={"help": "run the fixed-budget comparison (its ranks match "
                                                         "course-tiny's shapes)"})
    learning_rate: float = field(default=2e-3, metadata={"help": "LoRA on a 1.4M-parameter model tolerates a "
                                                                 "large LR"})
    max_steps: int = field(default=120, metadata={"help": "optimizer steps per run"})
    per_device_train_batch_size: int = field(default=8, metadata={"help": "sequences per step"})
    max_length: int = field(default=128, metadata={"help": "tokens per example"})
    eval_examples: int = field(default=200, metadata={"help": "validation examples for the perplexity"})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "LoRA init and batch order"})
    out: str = field(default="", metadata={"help": "output file; '' means data/results/lora_rank_ablation.json, "
                                                   "or lora_rank_ablation_<model>.json for another model"})


def lora_config(config: AblationConfig, scaling: str, r: int, target_modules=ATTENTION_TARGETS) -> LoraConfig:
    """The LoraConfig of rank `r` under one of SCALINGS."""
    if scaling == "fixed_alpha":
        return LoraConfig(r=r, lora_alpha=config.lora_alpha, target_modules=target_modules)
    if scaling == "alpha_2r":
        return LoraConfig(r=r, lora_alpha=float(2 * r), target_modules=target_modules)
    if scaling == "rslora":
        return LoraConfig(r=r, lora_alpha=config.rslora_alpha, target_modules=target_modules, use_rslora=True)
    raise ValueError(f"scaling must be one of {list(SCALINGS)}, not {scaling!r}.")


def lora_run(config: AblationConfig, lora: LoraConfig, train_rows, eval_texts: list[str], tokenizer=None,
             seed: int = 0) -> dict:
    """Fine-tune a fresh base model with `lora` on Alpaca rows; its trainable parameters and validation perplexity."""
    tok = tokenizer or load_tokenizer(config.model)
    set_seed(seed)
    model = load_base_model(config.model)
    add_lora(model, lora)
    train_cfg = TrainConfig(learning_rate=config.learning_rate, max_steps=config.max_steps,
                            per_device_train_batch_size=config.per_device_train_batch_size, seed=seed,
                            disable_tqdm=True)
    rows = TokenizedOnDemand(tok, train_rows, config.max_length, text_of=instruction_text)  # only the rows drawn
    train(model, rows, train_cfg, collate_fn=collator_for(tok, "causal-lm"))
    return {"trainable_parameters": count_parameters(model, trainable_only=True),
            "perplexity": perplexity(model, tok, eval_texts, max_length=config.max_length)}


def rank_ablation(config: AblationConfig) -> dict:
    """Validation perplexity and trainable parameters of LoRA runs at each rank, scaling, target set and seed."""
    ds = load_course_dataset("alpaca")
    tok = load_tokenizer(config.model)
    train_rows = list(ds["train"])
    eval_texts = [instruction_text(r) for r in list(ds["validation"])[: config.eval_examples]]
    base = perplexity(load_base_model(config.model), tok, eval_texts, max_length=config.max_length)
    result = {"base_perplexity": base, "runs": [], "budget": []}
    done: dict[tuple, dict] = {}  # two scalings that give the same factor at a rank give the same run: run it once

    def one(scaling: str, r: int, targets: tuple[str, ...], seed: int) -> dict:
        lora = lora_config(config, scaling, r, targets)
        factor = lora.lora_alpha / (r ** 0.5 if lora.use_rslora else r)
        key = (r, factor, targets, seed)
        if key not in done:
            done[key] = lora_run(config, lora, train_rows, eval_texts, tok, seed)
        return {"scaling": scaling, "r": r, "lora_alpha": lora.lora_alpha, "use_rslora": lora.use_rslora,
                "scaling_factor": factor, "seed": seed, **done[key]}

    for scaling in config.scalings:
        for r in config.ranks:
            for seed in config.seeds:
                row = {"targets": "attention", **one(scaling, r, ATTENTION_TARGETS, seed)}
                result["runs"].append(row)
                print(f"{scaling:11s} r={r:3d} seed {seed}: {row['trainable_parameters']:8d} trainable, "
                      f"perplexity {row['perplexity']:.2f}", flush=True)
    budget = (("attention", config.budget_rank_attention, ATTENTION_TARGETS),
              ("all-linear", config.budget_rank_all_linear, ALL_LINEAR_TARGETS)) if config.budget else ()
    for name, r, targets in budget:
        for seed in config.seeds:
            row = {"targets": name, **one(config.budget_scaling, r, targets, seed)}
            result["budget"].append(row)
            print(f"{name:10s} r={r:3d} seed {seed}: {row['trainable_parameters']:8d} trainable, "
                  f"perplexity {row['perplexity']:.2f}", flush=True)
    return result


def summarize(rows: list[dict], by: tuple[str, ...] = ("scaling", "r")) -> dict[tuple, tuple[float, float, int]]:
    """(values of `by`) -> (mean, sample standard deviation, trainable parameters) of perplexity over seeds."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in by), []).append(row)
    return {key: (statistics.mean(x["perplexity"] for x in g),
                  statistics.stdev(x["perplexity"] for x in g) if len(g) > 1 else 0.0,
                  g[0]["trainable_parameters"]) for key, g in groups.items()}


def _run(config: AblationConfig) -> int:
    if config.max_steps <= 0:
        raise ValueError(f"--max_steps must be positive, got {config.max_steps}.")
    unknown = [s for s in config.scalings + [config.budget_scaling] if s not in SCALINGS]
    if unknown:
        raise ValueError(f"unknown scaling {unknown[0]!r}: choose from {list(SCALINGS)}.")
    start = time.perf_counter()
    result = rank_ablation(config)
    model = model_name(config.model)
    payload = {"model": model,
               "command": command_line("lora-ablation", config), "config": asdict(config),
               "seconds": round(time.perf_counter() - start), **result}
    path = save_results(results_name("lora_rank_ablation", model), payload, out=config.out or None)
    print(f"wrote {path}")
    return 0


COMMANDS = {"lora-ablation": ("lesson 03: LoRA at ranks 1–64, two scalings, two target sets, 3 seeds -> "
                              "data/results/lora_rank_ablation.json (about 15 min on one CPU core, course-tiny)",
                              (AblationConfig,), _run)}
