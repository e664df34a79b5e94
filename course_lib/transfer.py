"""Transfer-learning experiments: learning curves and learning-rate comparisons (lessons 01, 02).

    course learning-curve   accuracy vs number of labelled examples for four ways of training
                            -> data/results/learning_curve.json                      (lesson 01)
    course lr-sweep         train/validation curves for several LRs, schedules, layer-wise LRs
                            -> data/results/lr_sweep.json                            (lesson 02)

Each run is `fine_tune_classifier(method, train_rows, val_rows, config, seed)`, the same call
the lessons make live for one point, so a lesson can check its live run against the file.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch

from course_lib.data import LABELS, data_dir, load_course_dataset
from course_lib.freezing import (discriminative_lr_groups, gradual_unfreezing, layer_groups,
                                 set_trainable_groups, trainable_report, unfreeze_top_blocks)
from course_lib.models import default_model_name, get_device, load_base_model, load_tokenizer, set_seed
from course_lib.training import (History, TrainConfig, TrainingDiverged, collator_for, make_optimizer,
                                 tokenize_classification, train)

__all__ = ["METHODS", "TransferConfig", "TransferRun", "fine_tune_classifier", "build_classifier",
           "classification_evaluator", "subset", "learning_curve", "lr_sweep", "results_path",
           "save_results", "load_results", "curve_summary", "plot_learning_curve", "COMMANDS"]

# method -> what trains; the plot labels of lesson 01
METHODS = {
    "scratch": "random init, trained from scratch",
    "linear_probe": "linear probe (frozen body, new head)",
    "top_blocks": "fine-tune top blocks + head",
    "full": "full fine-tuning",
}


@dataclass
class TransferConfig:
    """One fine-tuning run of lessons 01–02 (course-tiny defaults; larger models want smaller LRs)."""

    model: str = ""  # "" means $COURSE_MODEL or course-tiny
    max_steps: int = 80  # the same compute for every method and size: 1,280 examples seen
    per_device_train_batch_size: int = 16
    max_length: int = 64  # tokens per text; the docstrings are short
    lr_scratch: float = 1e-3  # random init needs pre-training-sized steps
    lr_probe: float = 1e-2  # only the head trains: a large LR is safe
    lr_top_blocks: float = 1e-3
    lr_full: float = 5e-4  # course-tiny is small; BERT-sized models use 2e-5 – 5e-5 (lesson 02)
    top_n: int = 2  # blocks trained by "top_blocks"
    lr_scheduler_type: str = "linear"
    warmup_ratio: float = 0.1
    eval_steps: int = 0  # 0: evaluate only at the end

    def learning_rate(self, method: str) -> float:
        return {"scratch": self.lr_scratch, "linear_probe": self.lr_probe,
                "top_blocks": self.lr_top_blocks, "full": self.lr_full}[method]

    def train_config(self, method: str, seed: int) -> TrainConfig:
        return TrainConfig(learning_rate=self.learning_rate(method), max_steps=self.max_steps,
                           per_device_train_batch_size=self.per_device_train_batch_size,
                           lr_scheduler_type=self.lr_scheduler_type, warmup_ratio=self.warmup_ratio,
                           eval_steps=self.eval_steps, seed=seed, disable_tqdm=True)


@dataclass
class TransferRun:
    """The outcome of one run: final validation metrics, what trained, the history."""

    method: str
    size: int
    seed: int
    accuracy: float
    loss: float
    trainable: int
    total: int
    seconds: float
    history: History = field(repr=False, default_factory=History)

    def record(self) -> dict:
        """The JSON-able row written to data/results (history left out)."""
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items() if k != "history"}


def subset(rows, size: int, seed: int) -> list[dict]:
    """`size` rows drawn with `seed`; for one seed, smaller subsets are inside larger ones."""
    rows = list(rows)
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    return [rows[i] for i in order[:size]]


def classification_evaluator(model_rows: list[dict], collate_fn: Callable,
                             batch_size: int = 64) -> Callable[[torch.nn.Module], dict[str, float]]:
    """evaluate(model) -> {"loss", "accuracy"} on tokenized rows, for `train(evaluate=...)`."""
    batches = [collate_fn(model_rows[i:i + batch_size]) for i in range(0, len(model_rows), batch_size)]

    @torch.no_grad()
    def evaluate(model: torch.nn.Module) -> dict[str, float]:
        device = next(model.parameters()).device
        total_loss, correct, n = 0.0, 0, 0
        for batch in batches:
            out = model(**{k: v.to(device) for k, v in batch.items()})
            labels = batch["labels"].to(device)
            total_loss += torch.nn.functional.cross_entropy(out.logits.float(), labels, reduction="sum").item()
            correct += (out.logits.argmax(-1) == labels).sum().item()
            n += len(labels)
        return {"loss": total_loss / n, "accuracy": correct / n}
    return evaluate


def build_classifier(method: str, config: TransferConfig, seed: int) -> torch.nn.Module:
    """course-tiny (or config.model) with a new 6-way head, frozen as `method` says (lesson 01)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, not {method!r}.")
    from transformers import AutoModelForSequenceClassification

    set_seed(seed)
    model = load_base_model(config.model or None, task="classification", num_labels=len(LABELS))
    if method == "scratch":  # same architecture and config, every weight random
        set_seed(seed)
        model = AutoModelForSequenceClassification.from_config(model.config)
    elif method == "linear_probe":
        unfreeze_top_blocks(model, 0)
    elif method == "top_blocks":
        unfreeze_top_blocks(model, config.top_n)
    return model.to(get_device())


def fine_tune_classifier(method: str, train_rows, val_rows, config: TransferConfig = TransferConfig(),
                         seed: int = 0, tokenizer=None, train_config: TrainConfig | None = None,
                         layerwise: str = "none") -> TransferRun:
    """Build the classifier for `method`, train it on `train_rows`, evaluate on `val_rows` (lessons 01, 02).

    layerwise: "none" (one LR), "discriminative" (LR / 2.6 per lower group), or "gradual"
    (discriminative and one more group unfrozen every max_steps / number-of-groups steps).
    """
    tokenizer = tokenizer or load_tokenizer(config.model or None)
    collate = collator_for(tokenizer, "classification")
    train_enc = tokenize_classification(tokenizer, train_rows, config.max_length)
    val_enc = tokenize_classification(tokenizer, val_rows, config.max_length)
    model = build_classifier(method, config, seed)
    tc = train_config or config.train_config(method, seed)
    if layerwise not in ("none", "discriminative", "gradual"):
        raise ValueError(f"layerwise must be 'none', 'discriminative' or 'gradual', not {layerwise!r}.")
    optimizer, hook = None, None
    if layerwise != "none":  # every group in the optimizer; frozen ones are skipped until unfrozen
        optimizer = make_optimizer(model, tc, discriminative_lr_groups(model, tc.learning_rate, 2.6,
                                                                       tc.weight_decay))
    if layerwise == "gradual":
        hook = gradual_unfreezing(every=max(1, math.ceil(tc.max_steps / len(layer_groups(model)))))
    report = trainable_report(model)
    start = time.perf_counter()
    history = train(model, train_enc, tc, collate_fn=collate, evaluate=classification_evaluator(val_enc, collate),
                    optimizer=optimizer, on_step_begin=hook)
    final = history.eval[-1]
    if hook is not None:
        set_trainable_groups(model, len(layer_groups(model)))
    return TransferRun(method=method, size=len(train_rows), seed=seed, accuracy=final["accuracy"],
                       loss=final["loss"], trainable=report.trainable, total=report.total,
                       seconds=time.perf_counter() - start, history=history)


# ---------------------------------------------------------------- cached experiments

def results_path(name: str) -> Path:
    """data/results/<name>.json"""
    return data_dir() / "results" / f"{name}.json"


def save_results(name: str, payload: dict) -> Path:
    from course_lib.doctor import versions_line

    path = results_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"model": default_model_name(), "versions": versions_line(), **payload}
    path.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    return path


def load_results(name: str) -> dict:
    """A results file written by a `course` command; a missing file says which command makes it."""
    path = results_path(name)
    if not path.exists():
        command = {"learning_curve": "course learning-curve", "lr_sweep": "course lr-sweep"}.get(name, "course")
        raise FileNotFoundError(f"{path} does not exist: run `{command}` to produce it.")
    return json.loads(path.read_text(encoding="utf-8"))


def _progress(msg: str) -> None:
    print(msg, flush=True)


def learning_curve(config: TransferConfig, sizes: list[int], seeds: list[int], methods: list[str],
                   log: Callable[[str], None] = _progress) -> list[dict]:
    """Every (method, size, seed) run of lesson 01's learning curve, as records."""
    ds = load_course_dataset("classification")
    train_rows, val_rows = list(ds["train"]), list(ds["validation"])
    tokenizer = load_tokenizer(config.model or None)
    records = []
    for seed in seeds:
        for size in sizes:
            for method in methods:
                run = fine_tune_classifier(method, subset(train_rows, size, seed), val_rows, config, seed, tokenizer)
                records.append(run.record())
                log(f"{method:13s} size {size:5d} seed {seed}: accuracy {run.accuracy:.3f} ({run.seconds:.1f} s)")
    return records


def _curve(history: History) -> dict:
    return {"step": history.step, "train_loss": [round(v, 4) for v in history.loss],
            "lr_at_step": history.learning_rate, "eval_step": history.eval_step,
            "val_loss": [round(v, 4) for v in history.eval_metric("loss")],
            "val_accuracy": [round(v, 4) for v in history.eval_metric("accuracy")]}


def lr_sweep(config: TransferConfig, learning_rates: list[float], seeds: list[int],
             log: Callable[[str], None] = _progress) -> dict:
    """Lesson 02's experiments: LRs (constant schedule), schedules, layer-wise LRs; full fine-tuning."""
    ds = load_course_dataset("classification")
    train_rows, val_rows = list(ds["train"]), list(ds["validation"])
    tokenizer = load_tokenizer(config.model or None)
    out: dict = {"learning_rates": [], "schedules": [], "layerwise": []}
    for lr in learning_rates:  # constant LR, no warm-up: only the LR differs between runs
        tc = replace(config.train_config("full", 0), learning_rate=lr, lr_scheduler_type="constant",
                     warmup_ratio=0.0)
        try:
            run = fine_tune_classifier("full", train_rows, val_rows, config, 0, tokenizer, tc)
            row = {"learning_rate": lr, "diverged": None, **_curve(run.history)}
        except TrainingDiverged as exc:
            row = {"learning_rate": lr, "diverged": str(exc), **_curve(exc.history)}
        out["learning_rates"].append(row)
        log(f"lr {lr:.0e}: " + ("diverged" if row["diverged"] else f"val accuracy {row['val_accuracy'][-1]:.3f}"))
    for schedule in ("constant", "linear", "cosine"):
        for seed in seeds:
            tc = replace(config.train_config("full", seed), lr_scheduler_type=schedule,
                         warmup_ratio=0.0 if schedule == "constant" else config.warmup_ratio)
            run = fine_tune_classifier("full", train_rows, val_rows, config, seed, tokenizer, tc)
            out["schedules"].append({"schedule": schedule, "seed": seed, **_curve(run.history)})
            log(f"{schedule:8s} seed {seed}: val accuracy {run.accuracy:.3f}")
    for layerwise in ("none", "discriminative", "gradual"):
        for seed in seeds:  # only the final accuracy matters here: no evaluation on the way
            tc = replace(config.train_config("full", seed), eval_steps=0)
            run = fine_tune_classifier("full", train_rows, val_rows, config, seed, tokenizer, tc, layerwise)
            out["layerwise"].append({"layerwise": layerwise, "seed": seed, "accuracy": round(run.accuracy, 4),
                                     "loss": round(run.loss, 4)})
            log(f"{layerwise:14s} seed {seed}: val accuracy {run.accuracy:.3f}")
    return out


# ---------------------------------------------------------------- reading and plotting the files

def curve_summary(results: dict) -> dict[str, dict[int, tuple[float, float]]]:
    """method -> size -> (mean, standard deviation over seeds) of validation accuracy."""
    acc: dict[str, dict[int, list[float]]] = {}
    for r in results["runs"]:
        acc.setdefault(r["method"], {}).setdefault(r["size"], []).append(r["accuracy"])
    out = {}
    for method, by_size in acc.items():
        out[method] = {}
        for size, vals in sorted(by_size.items()):
            mean = sum(vals) / len(vals)
            std = (sum((v - mean) ** 2 for v in vals) / max(1, len(vals) - 1)) ** 0.5
            out[method][size] = (mean, std)
    return out


def plot_learning_curve(results: dict, ax=None, chance: float | None = None):
    """Accuracy vs labelled examples, mean over seeds with a ±1 std band, one line per method."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(7, 4.2))[1]
    for method, by_size in curve_summary(results).items():
        sizes = list(by_size)
        mean = [by_size[s][0] for s in sizes]
        std = [by_size[s][1] for s in sizes]
        ax.plot(sizes, mean, marker="o", label=METHODS.get(method, method))
        ax.fill_between(sizes, [m - d for m, d in zip(mean, std)], [m + d for m, d in zip(mean, std)], alpha=0.2)
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle=":", label=f"chance ({chance:.2f})")
    n_seeds = len(results.get("seeds", [])) or "several"
    ax.set_xscale("log")
    ax.set_xlabel("labelled training examples (log scale)")
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"Learning curves: mean ± 1 std over {n_seeds} seeds, {results['config']['max_steps']} steps each")
    ax.legend(fontsize=8)
    return ax


# ---------------------------------------------------------------- `course` commands

def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def _common_args(p) -> None:
    from course_lib.cli import _add_dataclass_args
    _add_dataclass_args(p, TransferConfig)
    p.add_argument("--seeds", type=_ints, default=[0, 1, 2], help="comma-separated seeds (default 0,1,2)")


def _learning_curve_args(p) -> None:
    _common_args(p)
    p.add_argument("--sizes", type=_ints, default=[25, 100, 400, 1500],
                   help="comma-separated numbers of labelled examples")
    p.add_argument("--methods", type=lambda s: s.split(","), default=list(METHODS),
                   help=f"comma-separated, from {','.join(METHODS)}")


def _learning_curve_run(args) -> int:
    from course_lib.cli import _from_args
    config = _from_args(TransferConfig, args)
    start = time.perf_counter()
    records = learning_curve(config, args.sizes, args.seeds, args.methods)
    path = save_results("learning_curve", {
        "command": "course learning-curve", "config": asdict(config), "sizes": args.sizes,
        "seeds": args.seeds, "methods": args.methods, "seconds": round(time.perf_counter() - start),
        "runs": records})
    print(f"wrote {path}")
    return 0


def _lr_sweep_args(p) -> None:
    _common_args(p)
    p.add_argument("--learning-rates", type=_floats, default=[1e-5, 2e-5, 5e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-1],
                   help="comma-separated LRs for the LR comparison (constant schedule)")


def _lr_sweep_run(args) -> int:
    from course_lib.cli import _from_args
    config = _from_args(TransferConfig, args)
    if args.eval_steps is None:
        config = replace(config, eval_steps=15)
    if args.max_steps is None:
        config = replace(config, max_steps=60)
    start = time.perf_counter()
    out = lr_sweep(config, args.learning_rates, args.seeds)
    path = save_results("lr_sweep", {"command": "course lr-sweep", "config": asdict(config),
                                     "seeds": args.seeds, "seconds": round(time.perf_counter() - start), **out})
    print(f"wrote {path}")
    return 0


COMMANDS = {
    "learning-curve": ("lesson 01: accuracy vs labelled examples for scratch / linear probe / top blocks / "
                       "full fine-tuning -> data/results/learning_curve.json",
                       _learning_curve_args, _learning_curve_run),
    "lr-sweep": ("lesson 02: learning rates, schedules and layer-wise LRs compared -> data/results/lr_sweep.json",
                 _lr_sweep_args, _lr_sweep_run),
}
