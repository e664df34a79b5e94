"""Transfer learning: a pretrained body with a new classification head, trained four ways (lessons 01, 02).

Each run is `fine_tune_classifier(method, train_rows, val_rows, config, seed)`: the call the
lessons make live for one point, and the one the experiments in `course_lib.experiments`
(learning curve, LR sweep) repeat over sizes, seeds and learning rates.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field, replace

import torch

from course_lib.data.datasets import LABELS
from course_lib.data.encoding import collator_for, tokenize_classification
from course_lib.training.freezing import (discriminative_lr_groups, gradual_unfreezing, layer_groups,
                                 set_trainable_groups, trainable_report, unfreeze_top_blocks)
from course_lib.metrics import classification_evaluator
from course_lib.models.base import get_device, set_seed
from course_lib.models.loading import load_base_model, load_tokenizer
from course_lib.training.loop import History, TrainConfig, make_optimizer, train
from course_lib.training.sizing import COURSE_TINY_PARAMS, shrink_run

__all__ = ["METHODS", "TransferConfig", "TransferRun", "fine_tune_classifier", "build_classifier",
           "set_trainable_for", "subset", "curve_summary", "plot_learning_curve"]

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

    model: str = field(default="", metadata={"help": "a model folder or hub id; '' means $COURSE_MODEL or "
                                                     "course-tiny"})
    max_steps: int = field(default=80, metadata={"help": "optimizer steps, the same for every method and size "
                                                         "(80 × 16 = 1,280 examples seen)"})
    per_device_train_batch_size: int = field(default=16, metadata={"help": "examples per step"})
    max_length: int = field(default=64, metadata={"help": "tokens per text; the docstrings are short"})
    lr_scratch: float = field(default=1e-3, metadata={"help": "LR from random init: pre-training-sized steps"})
    lr_probe: float = field(default=1e-2, metadata={"help": "LR of a linear probe: only the head trains"})
    lr_top_blocks: float = field(default=1e-3, metadata={"help": "LR when the top blocks and head train"})
    lr_full: float = field(default=5e-4, metadata={"help": "LR of full fine-tuning (course-tiny is small; "
                                                           "BERT-sized models use 2e-5 – 5e-5, lesson 02)"})
    top_n: int = field(default=2, metadata={"help": "blocks trained by the top_blocks method"})
    lr_scheduler_type: str = field(default="linear", metadata={"help": "a transformers scheduler name"})
    warmup_ratio: float = field(default=0.1, metadata={"help": "share of max_steps warming up from 0"})
    eval_steps: int = field(default=0, metadata={"help": "evaluate every this many steps (0: only at the end)"})
    load_best_model_at_end: bool = field(default=False, metadata={
        "help": "restore the weights of the best evaluation at the end (needs eval_steps)"})
    metric_for_best_model: str = field(default="loss", metadata={"help": "validation metric that picks the best: "
                                                                         "'loss' or 'accuracy'"})
    early_stopping_patience: int = field(default=0, metadata={
        "help": "stop after this many evaluations without improvement (0: never; needs eval_steps)"})
    eval_rows: int = field(default=0, metadata={"help": "validation rows evaluated, a fixed random subset "
                                                        "(0: all of them)"})

    def learning_rate(self, method: str) -> float:
        return {"scratch": self.lr_scratch, "linear_probe": self.lr_probe,
                "top_blocks": self.lr_top_blocks, "full": self.lr_full}[method]

    def scaled_for(self, n_params: int, compute: float = 1.0) -> "TransferConfig":
        """This run reduced for a model of `n_params` parameters, so a live run costs about what it costs on
        course-tiny (lessons 01, 02), or `compute` times that (`course learning-curve --compute`).

        The tokens shrink by course_lib.training.sizing's one rule (`shrink_run`, a model k = n_params /
        COURSE_TINY_PARAMS times larger gets k / compute times fewer tokens): shorter texts first (not under 32
        tokens), then smaller batches (not under 8), then fewer steps (not under 16); at most 4 evaluations during
        training, and 128 validation rows unless eval_rows is set. The body's learning rates shrink by 1/sqrt(k) (lr_full 5e-4 becomes 5e-5 for 135M parameters,
        the range used to fine-tune BERT-sized models); the probe's stays, only the head trains. k ≤ 1
        returns the config unchanged.
        """
        k = n_params / COURSE_TINY_PARAMS
        if k <= 1:
            return self
        max_length, batch, steps, _ = shrink_run(self.max_length, self.per_device_train_batch_size, self.max_steps,
                                                 n_params, compute, floors=(32, 8, 16))
        eval_steps = max(1, round(self.eval_steps * steps / self.max_steps), steps // 4) if self.eval_steps else 0
        def shrink(lr: float) -> float:  # two significant digits: 5.1e-05, not 5.0595970881238875e-05
            return float(f"{lr * k ** -0.5:.2g}")
        return replace(self, max_length=max_length, per_device_train_batch_size=batch, max_steps=steps,
                       eval_steps=eval_steps, eval_rows=self.eval_rows or 128, lr_scratch=shrink(self.lr_scratch), lr_top_blocks=shrink(self.lr_top_blocks),
                       lr_full=shrink(self.lr_full))

    def train_config(self, method: str, seed: int) -> TrainConfig:
        return TrainConfig(learning_rate=self.learning_rate(method), max_steps=self.max_steps,
                           per_device_train_batch_size=self.per_device_train_batch_size,
                           lr_scheduler_type=self.lr_scheduler_type, warmup_ratio=self.warmup_ratio,
                           eval_steps=self.eval_steps, seed=seed, disable_tqdm=True,
                           load_best_model_at_end=self.load_best_model_at_end,
                           metric_for_best_model=self.metric_for_best_model,
                           early_stopping_patience=self.early_stopping_patience)


@dataclass
class TransferRun:
    """The outcome of one run: validation metrics of the model it ends with, what trained, the history.

    With load_best_model_at_end the metrics are those of the restored (best) evaluation.
    """

    method: str
    size: int
    seed: int
    accuracy: float
    loss: float
    trainable: int
    total: int
    seconds: float
    history: History = field(repr=False, default_factory=History)
    model: torch.nn.Module | None = field(repr=False, default=None)  # the trained model, with keep_model=True

    def record(self) -> dict:
        """The JSON-able row written to data/results (history and model left out)."""
        row = {k: v for k, v in vars(self).items() if k not in ("history", "model")}
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}


def subset(rows, size: int, seed: int) -> list[dict]:
    """`size` rows drawn with `seed`; for one seed, smaller subsets are inside larger ones."""
    rows = list(rows)
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    return [rows[i] for i in order[:size]]


def set_trainable_for(model: torch.nn.Module, method: str, top_n: int) -> None:
    """What trains under `method`: the head only (linear_probe), the top_n blocks and the head (top_blocks),
    everything (full, scratch) (lesson 01)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, not {method!r}.")
    unfreeze_top_blocks(model, {"linear_probe": 0, "top_blocks": top_n}.get(method, len(layer_groups(model)) - 1))


def build_classifier(method: str, config: TransferConfig, seed: int) -> torch.nn.Module:
    """course-tiny (or config.model) with a new 6-way head, frozen as `method` says (lesson 01)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, not {method!r}.")
    from transformers import AutoModelForSequenceClassification

    set_seed(seed)
    model = load_base_model(config.model, task="classification", num_labels=len(LABELS))
    if method == "scratch":  # same architecture and config, every weight random
        set_seed(seed)
        model = AutoModelForSequenceClassification.from_config(model.config)
    set_trainable_for(model, method, config.top_n)
    return model.to(get_device())


def fine_tune_classifier(method: str, train_rows, val_rows, config: TransferConfig | None = None,
                         seed: int = 0, tokenizer=None, train_config: TrainConfig | None = None,
                         layerwise: str = "none", layer_factor: float = 2.6,
                         keep_model: bool = False) -> TransferRun:
    """Build the classifier for `method`, train it on `train_rows`, evaluate on `val_rows` (lessons 01, 02).

    layerwise: "none" (one LR), "discriminative" (LR / layer_factor per lower group: ULMFiT's 2.6, or
    a factor close to 1 for layer-wise LR decay), or "gradual" (discriminative and one more group
    unfrozen every max_steps / number-of-groups steps).
    keep_model: return the trained model on the run (e.g. to evaluate it on the test split).
    """
    config = config or TransferConfig()
    tokenizer = tokenizer or load_tokenizer(config.model)
    collate = collator_for(tokenizer, "classification")
    train_enc = tokenize_classification(tokenizer, train_rows, config.max_length)
    if config.eval_rows:
        val_rows = subset(val_rows, config.eval_rows, seed=0)  # the same rows for every run
    val_enc = tokenize_classification(tokenizer, val_rows, config.max_length)
    model = build_classifier(method, config, seed)
    tc = train_config or config.train_config(method, seed)
    if layerwise not in ("none", "discriminative", "gradual"):
        raise ValueError(f"layerwise must be 'none', 'discriminative' or 'gradual', not {layerwise!r}.")
    optimizer, hook = None, None
    if layerwise != "none":  # every group in the optimizer; frozen ones are skipped until unfrozen
        optimizer = make_optimizer(model, tc, discriminative_lr_groups(model, tc.learning_rate, layer_factor,
                                                                       tc.weight_decay))
    if layerwise == "gradual":
        hook = gradual_unfreezing(every=max(1, math.ceil(tc.max_steps / len(layer_groups(model)))))
    report = trainable_report(model)
    start = time.perf_counter()
    history = train(model, train_enc, tc, collate_fn=collate, evaluate=classification_evaluator(val_enc, collate),
                    optimizer=optimizer, on_step_begin=hook)
    final = history.final()
    if hook is not None:
        set_trainable_groups(model, len(layer_groups(model)))
    return TransferRun(method=method, size=len(train_rows), seed=seed, accuracy=final["accuracy"],
                       loss=final["loss"], trainable=report.trainable, total=report.total,
                       seconds=time.perf_counter() - start, history=history, model=model if keep_model else None)


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
