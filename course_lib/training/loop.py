"""The course's training loop: small, readable, with a progress bar and a history (lesson 01).

`train(model, dataset, config)` is the loop every lesson uses. Its settings mirror the names of
transformers' `TrainingArguments`, so the same run can be repeated with `Trainer` (lesson 01
shows both). A loss that becomes NaN or explodes stops training with one sentence saying at
which step and what to do (lesson 02); the history up to that point is kept on the exception. With `eval_steps`,
`load_best_model_at_end` and `early_stopping_patience` it stops when the validation metric has
not improved for that many evaluations and hands back the best model seen (lesson 01), as the
`Trainer` does with `EarlyStoppingCallback`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable, Literal, Sequence

import torch
from tqdm.auto import tqdm

from course_lib.models.base import set_seed

__all__ = ["TrainConfig", "History", "TrainingDiverged", "train", "make_optimizer", "make_scheduler",
           "shuffled_batches", "accumulate_gradients"]

@dataclass
class TrainConfig:
    """Settings of `train`; names as in transformers.TrainingArguments."""

    learning_rate: float = 5e-5  # peak LR (BERT-style fine-tuning: 2e-5 – 5e-5; LoRA: 1e-4 – 2e-4)
    max_steps: int = 100  # optimizer steps; the data is cycled through as often as needed
    per_device_train_batch_size: int = 16
    lr_scheduler_type: str = "constant"  # any transformers scheduler name: "linear", "cosine", ...
    warmup_ratio: float = 0.0  # share of max_steps spent warming up linearly from 0
    weight_decay: float = 0.0  # AdamW decoupled weight decay
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    max_grad_norm: float = 1.0  # gradient clipping; 0 disables it
    eval_steps: int = 0  # evaluate every this many steps (0: only at the end)
    logging_steps: int = 1  # record the training loss every this many steps
    seed: int = 0  # data order and any random init made inside the loop
    divergence_factor: float = 10.0  # stop when loss > this × the first loss (or is NaN/inf)
    disable_tqdm: bool = False  # True hides the progress bar
    load_best_model_at_end: bool = False  # keep the weights of the best evaluation and restore them at the end
    metric_for_best_model: str = "loss"  # a key of what `evaluate` returns ("loss", "accuracy", ...)
    greater_is_better: bool | None = None  # None: False for names ending in "loss", else True (as transformers)
    early_stopping_patience: int = 0  # stop after this many evaluations without improvement (0: never);
    # in the Trainer it is EarlyStoppingCallback's argument, not a TrainingArguments field

    def __post_init__(self):
        if self.greater_is_better is None:
            self.greater_is_better = not self.metric_for_best_model.endswith("loss")
        if (self.load_best_model_at_end or self.early_stopping_patience) and not self.eval_steps:
            raise ValueError("load_best_model_at_end and early_stopping_patience need evaluations during "
                             "training: set eval_steps > 0.")

    def improved(self, value: float, best: float | None) -> bool:
        """Whether `value` of metric_for_best_model beats `best` (strictly, as EarlyStoppingCallback)."""
        return best is None or (value > best if self.greater_is_better else value < best)

    def to_training_arguments(self, output_dir: str, **overrides):
        """The same run as transformers' `TrainingArguments` (lesson 01): every shared name carried over.

        `divergence_factor` has no counterpart (the Trainer does not stop on a blown-up loss);
        `eval_steps` > 0 turns on step-wise evaluation; `load_best_model_at_end` saves a checkpoint
        at every evaluation (the Trainer restores the best from disk). `early_stopping_patience` is
        not an argument: pass `config.callbacks()` to the Trainer. `overrides` are passed through.
        """
        from transformers import TrainingArguments

        kwargs = dict(output_dir=output_dir, learning_rate=self.learning_rate, max_steps=self.max_steps,
                      per_device_train_batch_size=self.per_device_train_batch_size,
                      lr_scheduler_type=self.lr_scheduler_type,
                      warmup_steps=self.warmup_ratio,  # transformers 5: a float below 1 is a ratio of max_steps
                      weight_decay=self.weight_decay, adam_beta1=self.adam_beta1, adam_beta2=self.adam_beta2,
                      max_grad_norm=self.max_grad_norm, logging_steps=self.logging_steps, seed=self.seed,
                      disable_tqdm=self.disable_tqdm, report_to="none",
                      eval_strategy="steps" if self.eval_steps else "no", eval_steps=self.eval_steps or None,
                      save_strategy="steps" if self.load_best_model_at_end else "no",
                      save_steps=self.eval_steps or None, save_total_limit=1 if self.load_best_model_at_end else None,
                      load_best_model_at_end=self.load_best_model_at_end,
                      metric_for_best_model=self.metric_for_best_model, greater_is_better=self.greater_is_better)
        return TrainingArguments(**{**kwargs, **overrides})

    def callbacks(self) -> list:
        """The Trainer callbacks this config needs: EarlyStoppingCallback when early_stopping_patience > 0."""
        from transformers import EarlyStoppingCallback

        return [EarlyStoppingCallback(self.early_stopping_patience)] if self.early_stopping_patience else []


@dataclass
class History:
    """What happened during `train`: one row per logged step and per evaluation."""

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    learning_rate: list[float] = field(default_factory=list)
    eval_step: list[int] = field(default_factory=list)
    eval: list[dict[str, float]] = field(default_factory=list)  # what `evaluate` returned
    best_step: int | None = None  # the evaluation restored by load_best_model_at_end (None: none restored)
    stopped_step: int | None = None  # the step early stopping ended training at (None: ran max_steps)

    def final(self) -> dict[str, float]:
        """The evaluation of the model `train` returned: the best one if it was restored, else the last."""
        if self.best_step is None:
            return self.eval[-1]
        return self.eval[self.eval_step.index(self.best_step)]

    def eval_metric(self, name: str) -> list[float]:
        """One evaluation metric over time, e.g. history.eval_metric("accuracy")."""
        return [e[name] for e in self.eval]


class TrainingDiverged(RuntimeError):
    """The loss became NaN, infinite, or exploded; `.history` holds the run up to then."""

    def __init__(self, message: str, history: History):
        super().__init__(message)
        self.history = history


def make_optimizer(model: torch.nn.Module, config: TrainConfig,
                   param_groups: Sequence[dict] | None = None) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters, or over explicit groups (discriminative LRs, lesson 02)."""
    groups = param_groups or [{"params": [p for p in model.parameters() if p.requires_grad]}]
    if not any(p.requires_grad for g in groups for p in g["params"]):
        raise ValueError("No trainable parameters: every parameter has requires_grad=False. "
                         "Unfreeze something (e.g. the head) before training.")
    return torch.optim.AdamW(groups, lr=config.learning_rate, weight_decay=config.weight_decay,
                             betas=(config.adam_beta1, config.adam_beta2))


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig):
    """transformers' scheduler by name, with warmup_ratio × max_steps warm-up steps."""
    from transformers import get_scheduler

    warmup = int(round(config.warmup_ratio * config.max_steps))
    return get_scheduler(config.lr_scheduler_type, optimizer, num_warmup_steps=warmup,
                         num_training_steps=config.max_steps)


def shuffled_batches(dataset, batch_size: int, collate_fn, seed: int):
    """An endless stream of shuffled batches; each pass over the data reshuffles (also used by lr_find)."""
    gen = torch.Generator().manual_seed(seed)
    while True:
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True,
                                             collate_fn=collate_fn, generator=gen)
        yield from loader


def train(model: torch.nn.Module, dataset, config: TrainConfig | None = None, *,
          collate_fn: Callable | None = None,
          evaluate: Callable[[torch.nn.Module], dict[str, float]] | None = None,
          optimizer: torch.optim.Optimizer | None = None,
          extra_loss: Callable[[torch.nn.Module], torch.Tensor] | None = None,
          batches=None,
          on_step_begin: Callable[[int, torch.nn.Module], None] | None = None) -> History:
    """Train `model` for config.max_steps steps on `dataset` (rows the model's forward accepts, with labels).

    evaluate(model) -> {"name": value} runs every eval_steps and at the end; extra_loss(model)
    is added to the task loss (e.g. an EWC penalty, lesson 05); `batches` replaces the
    default shuffled stream with any iterator of batches (e.g. replay mixing, lesson 05);
    on_step_begin(step, model) runs before each step (e.g. gradual unfreezing, lesson 01).
    One function of about 90 lines on purpose: lesson 01 reads the whole loop in one screen (step,
    accumulate, clip, schedule, evaluate, stop early, divergence) next to TrainingArguments' names.
    """
    config = config or TrainConfig()
    set_seed(config.seed)
    device = next(model.parameters()).device
    optimizer = optimizer or make_optimizer(model, config)
    scheduler = make_scheduler(optimizer, config)
    stream = batches if batches is not None else shuffled_batches(dataset, config.per_device_train_batch_size,
                                                          collate_fn, config.seed)
    history, first_loss = History(), None
    best = {"value": None, "step": None, "state": None, "bad_evals": 0}

    def run_eval(step: int) -> None:
        if evaluate is not None:
            model.eval()
            with torch.no_grad():
                history.eval.append({k: float(v) for k, v in evaluate(model).items()})
            history.eval_step.append(step)
            model.train()
            if config.load_best_model_at_end or config.early_stopping_patience:
                track_best(step, history.eval[-1][config.metric_for_best_model])

    def track_best(step: int, value: float) -> None:
        if config.improved(value, best["value"]):
            best.update(value=value, step=step, bad_evals=0)
            if config.load_best_model_at_end:  # in memory; the Trainer writes a checkpoint instead
                best["state"] = copy.deepcopy(model.state_dict())
        else:
            best["bad_evals"] += 1

    model.train()
    bar = tqdm(range(1, config.max_steps + 1), desc="training", disable=config.disable_tqdm, leave=False)
    for step in bar:
        if on_step_begin is not None:
            on_step_begin(step, model)
        batch = {k: v.to(device) for k, v in next(stream).items()}
        loss = model(**batch).loss
        if extra_loss is not None:
            loss = loss + extra_loss(model)
        value = loss.item()
        first_loss = value if first_loss is None else first_loss
        if not math.isfinite(value) or value > config.divergence_factor * max(first_loss, 1e-3):
            bar.close()
            lr = optimizer.param_groups[0]["lr"]
            what = "became NaN" if math.isnan(value) else "became infinite" if math.isinf(value) else \
                f"exploded to {value:.3g} (it started at {first_loss:.3g})"
            raise TrainingDiverged(
                f"Training diverged: the loss {what} at step {step} with learning rate {lr:.2e}. "
                "Lower the learning rate (try 10× smaller), add warm-up, or keep gradient clipping on.",
                history)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.max_grad_norm:
            torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]],
                                           config.max_grad_norm)
        if step % config.logging_steps == 0 or step == config.max_steps:
            history.step.append(step)
            history.loss.append(value)
            history.learning_rate.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
        if not config.disable_tqdm and step % 10 == 0:
            bar.set_postfix(loss=f"{value:.3f}")
        if config.eval_steps and step % config.eval_steps == 0 and step != config.max_steps:
            run_eval(step)
            if config.early_stopping_patience and best["bad_evals"] >= config.early_stopping_patience:
                history.stopped_step = step
                break
    if history.stopped_step is None:
        run_eval(config.max_steps)
    bar.close()
    if config.load_best_model_at_end and best["state"] is not None:
        model.load_state_dict(best["state"])
        history.best_step = best["step"]
    model.eval()
    return history


def accumulate_gradients(model: torch.nn.Module, micro_batches: Sequence[dict],
                         normalisation: Literal["tokens", "mean"] = "tokens") -> float:
    """Backward through the micro-batches of one update, adding their gradients into .grad (lesson 04).

    "tokens": each micro-batch's summed token loss is divided by the label tokens of all of them
    together, so the gradients add up to the whole batch's — what transformers' Trainer does with
    `gradient_accumulation_steps` (it passes that count to the model as `num_items_in_batch`).
    "mean": each micro-batch's mean loss divided by their number, which equals the whole batch's
    only when every micro-batch has as many label tokens. Returns the whole batch's loss.
    """
    if normalisation not in ("tokens", "mean"):
        raise ValueError(f"normalisation must be 'tokens' or 'mean', not {normalisation!r}.")
    device = next(model.parameters()).device
    label_tokens = sum(int(b["labels"][..., 1:].ne(-100).sum()) for b in micro_batches)  # causal LM: shifted by one
    total = 0.0
    for batch in micro_batches:
        batch = {k: v.to(device) for k, v in batch.items()}
        if normalisation == "tokens":
            loss = model(**batch, num_items_in_batch=label_tokens).loss  # sum over tokens / all label tokens
        else:
            loss = model(**batch).loss / len(micro_batches)
        loss.backward()
        total += loss.item()
    return total
