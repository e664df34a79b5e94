"""`course lr-sweep`: learning rates, schedules and layer-wise LRs compared on full fine-tuning (lesson 02)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Callable

from course_lib.data.datasets import load_course_dataset
from course_lib.models.base import model_name
from course_lib.models.loading import load_tokenizer
from course_lib.results import command_line, save_results
from course_lib.training.loop import History, TrainingDiverged
from course_lib.training.transfer import TransferConfig, fine_tune_classifier

__all__ = ["SweepTransferConfig", "LRSweepArgs", "lr_sweep", "COMMANDS"]


@dataclass
class SweepTransferConfig(TransferConfig):
    """TransferConfig with the sweep's own defaults: shorter runs, evaluated along the way for the curves."""

    max_steps: int = field(default=60, metadata={"help": "optimizer steps per run"})
    eval_steps: int = field(default=15, metadata={"help": "a validation point every this many steps"})


@dataclass
class LRSweepArgs:
    """What the sweep compares."""

    learning_rates: list[float] = field(default_factory=lambda: [1e-5, 5e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-1],
                                        metadata={"help": "LRs compared at a constant schedule, each with every seed"})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2],
                             metadata={"help": "seeds (head init and batch order) of every comparison"})
    layer_factors: list[float] = field(default_factory=lambda: [1.0, 1.25, 2.6],
                                       metadata={"help": "LR divided by this per lower layer group: 1 is one LR "
                                                         "for all, 1.25 a layer-wise decay of 0.8, 2.6 ULMFiT's"})
    top_learning_rates: list[float] = field(default_factory=lambda: [5e-4, 2e-3],
                                            metadata={"help": "top-group LRs tried with each layer factor, so each "
                                                              "is compared at its better top LR"})


def _curve(history: History) -> dict:
    return {"step": history.step, "train_loss": [round(v, 4) for v in history.loss],
            "lr_at_step": history.learning_rate, "eval_step": history.eval_step,
            "val_loss": [round(v, 4) for v in history.eval_metric("loss")],
            "val_accuracy": [round(v, 4) for v in history.eval_metric("accuracy")]}


def lr_sweep(config: TransferConfig, args: LRSweepArgs, log: Callable[[str], None] = print) -> dict:
    """Lesson 02's experiments, each over `args.seeds`: LRs (constant schedule), schedules, layer-wise LRs at
    each top LR; full fine-tuning."""
    ds = load_course_dataset("classification")
    train_rows, val_rows = list(ds["train"]), list(ds["validation"])
    tokenizer = load_tokenizer(config.model)
    out: dict = {"learning_rates": [], "schedules": [], "layerwise": []}
    for lr in args.learning_rates:  # constant LR, no warm-up: only the LR and the seed differ between runs
        for seed in args.seeds:
            tc = replace(config.train_config("full", seed), learning_rate=lr, lr_scheduler_type="constant",
                         warmup_ratio=0.0)
            try:
                run = fine_tune_classifier("full", train_rows, val_rows, config, seed, tokenizer, tc)
                row = {"learning_rate": lr, "seed": seed, "diverged": None, **_curve(run.history)}
            except TrainingDiverged as exc:
                row = {"learning_rate": lr, "seed": seed, "diverged": str(exc), **_curve(exc.history)}
            out["learning_rates"].append(row)
            log(f"lr {lr:.0e} seed {seed}: " + ("diverged" if row["diverged"]
                                                else f"val accuracy {row['val_accuracy'][-1]:.3f}"))
    for schedule in ("constant", "linear", "cosine"):
        for seed in args.seeds:
            tc = replace(config.train_config("full", seed), lr_scheduler_type=schedule,
                         warmup_ratio=0.0 if schedule == "constant" else config.warmup_ratio)
            run = fine_tune_classifier("full", train_rows, val_rows, config, seed, tokenizer, tc)
            out["schedules"].append({"schedule": schedule, "seed": seed, **_curve(run.history)})
            log(f"{schedule:8s} seed {seed}: val accuracy {run.accuracy:.3f}")
    for factor in args.layer_factors:
        for top_lr in args.top_learning_rates:
            for seed in args.seeds:  # only the final accuracy matters here: no evaluation on the way
                tc = replace(config.train_config("full", seed), learning_rate=top_lr, eval_steps=0)
                run = fine_tune_classifier("full", train_rows, val_rows, config, seed, tokenizer, tc,
                                           "none" if factor == 1.0 else "discriminative", factor)
                out["layerwise"].append({"layer_factor": factor, "top_learning_rate": top_lr, "seed": seed,
                                         "accuracy": round(run.accuracy, 4), "loss": round(run.loss, 4)})
                log(f"factor {factor:4.2f} top LR {top_lr:.0e} seed {seed}: val accuracy {run.accuracy:.3f}")
    return out


def _run(config: SweepTransferConfig, args: LRSweepArgs) -> int:
    start = time.perf_counter()
    out = lr_sweep(config, args, log=lambda line: print(line, flush=True))
    path = save_results("lr_sweep", {"model": model_name(config.model),
                                     "command": command_line("lr-sweep", config, args), "config": asdict(config),
                                     "sweep": asdict(args), "seeds": args.seeds,
                                     "seconds": round(time.perf_counter() - start), **out})
    print(f"wrote {path}")
    return 0


COMMANDS = {"lr-sweep": ("lesson 02: learning rates, schedules and layer-wise LRs compared -> "
                         "data/results/lr_sweep.json (about 30 min on one CPU core, course-tiny)",
                         (SweepTransferConfig, LRSweepArgs), _run)}
