"""`course learning-curve`: accuracy vs labelled examples for four ways of training (lesson 01).

On course-tiny it writes data/results/learning_curve.json. With `--model` naming a bigger model
(`course learning-curve --model smollm2-135m-instruct`) the runs are reduced by
`TransferConfig.scaled_for` (shorter texts, smaller batches, fewer steps, smaller learning rates,
a fixed validation subset; `--compute` buys back steps) and written to data/results/learning_curve_<model>.json; the file
records the config that actually ran and the command line.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Callable

from course_lib.data.datasets import load_course_dataset
from course_lib.models.base import count_parameters, model_name
from course_lib.models.loading import load_base_model, load_tokenizer
from course_lib.results import command_line, results_name, save_results
from course_lib.training.transfer import METHODS, TransferConfig, fine_tune_classifier, subset

__all__ = ["LearningCurveArgs", "learning_curve", "COMMANDS"]


@dataclass
class LearningCurveArgs:
    """Which points of the learning curve to run."""

    sizes: list[int] = field(default_factory=lambda: [25, 100, 400, 1500],
                             metadata={"help": "numbers of labelled training examples"})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "seeds, one run each"})
    methods: list[str] = field(default_factory=lambda: list(METHODS),
                               metadata={"help": f"from {', '.join(METHODS)}"})
    compute: float = field(default=1.0, metadata={"help": "on a model bigger than course-tiny: each run costs "
                                                          "about this many times course-tiny's (more steps)"})


def learning_curve(config: TransferConfig, args: LearningCurveArgs,
                   log: Callable[[str], None] = print) -> list[dict]:
    """Every (method, size, seed) run of lesson 01's learning curve, as records."""
    ds = load_course_dataset("classification")
    train_rows, val_rows = list(ds["train"]), list(ds["validation"])
    tokenizer = load_tokenizer(config.model)
    records = []
    for seed in args.seeds:
        for size in args.sizes:
            for method in args.methods:
                run = fine_tune_classifier(method, subset(train_rows, size, seed), val_rows, config, seed, tokenizer)
                records.append(run.record())
                log(f"{method:13s} size {size:5d} seed {seed}: accuracy {run.accuracy:.3f} ({run.seconds:.1f} s)")
    return records


def _run(config: TransferConfig, args: LearningCurveArgs) -> int:
    unknown = set(args.methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown method(s) {sorted(unknown)}; choose from {list(METHODS)}")
    model = model_name(config.model)
    command = command_line("learning-curve", config, args)
    n_params = count_parameters(load_base_model(model))
    ran = replace(config.scaled_for(n_params, args.compute), model=model)  # unchanged for course-tiny
    start = time.perf_counter()
    records = learning_curve(ran, args)
    path = save_results(results_name("learning_curve", model), {
        "model": model, "command": command, "parameters": n_params, "config": asdict(ran), **asdict(args),
        "seconds": round(time.perf_counter() - start), "runs": records})
    print(f"wrote {path}")
    return 0


COMMANDS = {"learning-curve": ("lesson 01: accuracy vs labelled examples for scratch / linear probe / top blocks / "
                               "full fine-tuning -> data/results/learning_curve.json",
                               (TransferConfig, LearningCurveArgs), _run)}
