"""The long runs of lesson 07: a learning-rate sweep, DPO over seeds, and DPO's variants, on on-policy pairs.

    course dpo-sweep      DPO at several learning rates, seed 0, judged on the validation prompts
    course dpo            DPO at the sweep's learning rate, 3 seeds, judged on the held-out prompts
    course dpo-variants   DPO + SFT, IPO and ORPO at the same settings, judged like DPO

Every run starts from lesson 06's model (`dpo.sft_reference`) with a fresh LoRA adapter, trains on
data/preferences-on-policy/train.jsonl (`course dpo-pairs`) and is measured against the model it
started from: preference metrics on held-out pairs (`dpo.evaluate_pairs`), and its greedy answers to
every held-out prompt scored by the rule and compared with lesson 06's (`pairs.win_rate`).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Callable, Sequence

from course_lib.data.datasets import format_ok
from course_lib.models.base import count_parameters, set_seed
from course_lib.models.loading import load_tokenizer
from course_lib.tuning import sft
from course_lib.tuning.dpo import LOSSES, DPORunConfig, dpo_trainer, evaluate_pairs, reference_logps, sft_reference
from course_lib.tuning.orpo import orpo_trainer
from course_lib.tuning.pairs import greedy_answers, on_policy_rows, outcomes, sample_rows, score_parts, win_rate

__all__ = ["ARMS", "SweepConfig", "SeedsConfig", "VariantsConfig", "train_arm", "evaluate_model", "run_arms",
           "sweep_run", "seeds_run", "variants_run", "best_learning_rate"]

ARMS = (*LOSSES, "orpo")  # what a run can train
CURVE_KEYS = ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen",
              "logps/rejected", "nll_loss")


def _train_fields(config) -> dict:
    return {f.name: getattr(config, f.name) for f in fields(DPORunConfig)}


@dataclass
class SweepConfig(DPORunConfig):
    """`course dpo-sweep`: DPO at each learning rate, one seed, measured on the validation split."""

    learning_rate: float = field(default=0.0, metadata={"help": "not used here: the sweep sets --learning_rates"})
    learning_rates: list[float] = field(default_factory=lambda: [1e-6, 1e-4, 1e-3, 5e-3], metadata={
        "help": "learning rates to try (1e-6 is TRL's DPOConfig default, set for full fine-tuning)"})
    seed: int = field(default=0, metadata={"help": "LoRA init and batch order"})
    max_new_tokens: int = field(default=40, metadata={"help": "greedy tokens per held-out answer"})
    out: str = field(default="", metadata={"help": "results file; '' = data/results/dpo_sweep.json"})
    resume: bool = field(default=False, metadata={"help": "keep the runs an interrupted command finished"})


@dataclass
class SeedsConfig(DPORunConfig):
    """`course dpo`: DPO at one learning rate (the sweep's best on validation), several seeds, on the test split."""

    learning_rate: float = field(default=1e-3, metadata={"help": "constant LR: `course dpo-sweep`'s pick"})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "LoRA init and batch order"})
    max_new_tokens: int = field(default=40, metadata={"help": "greedy tokens per held-out answer"})
    out: str = field(default="", metadata={"help": "results file; '' = data/results/dpo.json"})
    resume: bool = field(default=False, metadata={"help": "keep the runs an interrupted command finished"})


@dataclass
class VariantsConfig(SeedsConfig):
    """`course dpo-variants`: other objectives with `course dpo`'s settings (LR, steps, adapter, pairs)."""

    losses: list[str] = field(default_factory=lambda: ["dpo+sft", "ipo", "orpo"], metadata={
        "help": f"objectives, of {', '.join(ARMS)}: dpo+sft adds the chosen answers' NLL (weight 1), ipo uses β as τ, "
                "orpo uses β as λ"})
    seeds: list[int] = field(default_factory=lambda: [0], metadata={"help": "LoRA init and batch order"})
    out: str = field(default="", metadata={"help": "results file; '' = data/results/dpo_variants.json"})

    def validate(self) -> None:
        unknown = [x for x in self.losses if x not in ARMS]
        if unknown or not self.losses:
            raise ValueError(f"--losses must name some of {', '.join(ARMS)} (got {' '.join(self.losses) or 'none'}).")


def train_arm(config: DPORunConfig, seed: int, tokenizer, train: Sequence[dict], reference, model_name: str):
    """Train one arm from lesson 06's model; returns the trained peft model and the per-step training log."""
    set_seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        if config.loss == "orpo":
            trainer = orpo_trainer(sft_reference(model_name), tokenizer, train, config, tmp, seed)
        else:
            trainer = dpo_trainer(sft_reference(model_name), tokenizer, train, [], config, tmp, seed, reference)
        trainer.train()
    logs = [e for e in trainer.state.log_history if "loss" in e and "train_runtime" not in e]
    curve = {"step": [e["step"] for e in logs], **{k: [e[k] for e in logs] for k in CURVE_KEYS if logs and k in logs[0]}}
    return trainer.model, curve


def evaluate_model(model, tokenizer, split: str, beta: float, max_new_tokens: int) -> dict:
    """Held-out pair metrics of `split`, and the greedy answers to all its prompts scored against lesson 06's."""
    rows = sample_rows(split)
    prompts = [sft.prompt_for(tokenizer, {"messages": [{"role": "user", "content": r["prompt"]},
                                                       {"role": "assistant", "content": r["reference"]}]}) for r in rows]
    answers, cut = greedy_answers(model, tokenizer, prompts, max_new_tokens)
    parts = [score_parts(a, r["prompt"], r["reference"]) for a, r in zip(answers, rows)]
    scores = [round(p["score"], 6) for p in parts]
    per_prompt = outcomes(scores, [r["sft_score"] for r in rows])
    n, held_out = len(rows), on_policy_rows(split)
    return {**(evaluate_pairs(model, tokenizer, held_out, beta) if held_out else {}), "answers": answers, "scores": scores,
            "outcomes": per_prompt, "win_rate": win_rate(per_prompt), "score": sum(scores) / n,
            "format_rate": sum(format_ok(a) for a in answers) / n, "names": sum(p["names"] for p in parts) / n,
            "rouge_l": sum(p["rouge_l"] for p in parts) / n, "cut": sum(cut),
            "changed": sum(a != r["sft_answer"] for a, r in zip(answers, rows))}


def run_arms(arms: Sequence[tuple[DPORunConfig, int]], split: str, max_new_tokens: int, model_name: str | None = None,
             *, finished: Sequence[dict] = (), on_run: Callable[[dict], None] | None = None) -> dict:
    """Train and measure each (config, seed); runs in `finished` (an interrupted command's) are kept, not rerun."""
    model_name = model_name or sft.lesson_model()
    start, tok = time.perf_counter(), load_tokenizer(model_name)
    train = on_policy_rows("train")
    kept = {(r["loss"], r["learning_rate"], r["seed"]): r for r in finished}
    todo = [(c, s) for c, s in arms if (c.loss, c.learning_rate, s) not in kept]
    reference = None
    if any(c.loss != "orpo" for c, _ in todo):  # one reference pass over the training pairs, shared by every run
        t0 = time.perf_counter()
        reference = reference_logps(sft_reference(model_name), tok, train)
        print(f"[{split}] reference log-probabilities of {len(train)} training pairs ({time.perf_counter() - t0:.0f} s)",
              flush=True)
    runs = []
    for config, seed in arms:
        key = (config.loss, config.learning_rate, seed)
        if key in kept:
            runs.append(kept[key])
            continue
        t0 = time.perf_counter()
        model, curve = train_arm(config, seed, tok, train, reference, model_name)
        trained = time.perf_counter() - t0
        run = {**_train_fields(config), "seed": seed, "curve": curve,
               "after": evaluate_model(model, tok, split, config.beta, max_new_tokens),
               "trainable_parameters": count_parameters(model, trainable_only=True),
               "train_seconds": round(trained, 1), "wall_seconds": round(time.perf_counter() - t0, 1)}
        a = run["after"]
        print(f"[{config.loss} lr={config.learning_rate:g} seed={seed}] accuracy {a.get('accuracy', 0):.3f}, chosen "
              f"log-ratio {a.get('chosen_logratio', 0):.2f}, kl {a.get('kl', 0):.4f}, win rate {a['win_rate']['win_rate']:.3f} ± "
              f"{a['win_rate']['se']:.3f} ({run['wall_seconds']:.0f} s)", flush=True)
        runs.append(run)
        if on_run is not None:
            on_run(run)
    return {"model": model_name, "split": split, "train_pairs": len(train), "runs": runs,
            "wall_seconds": round(time.perf_counter() - start, 1)}


def _options(config) -> dict:
    return {k: v for k, v in asdict(config).items() if k not in ("out", "resume")}


def sweep_run(config: SweepConfig | None = None, model_name: str | None = None, **keep) -> dict:
    """DPO at each learning rate (one seed), measured on the validation prompts and pairs."""
    config = config or SweepConfig()
    arms = [(replace(DPORunConfig(**_train_fields(config)), learning_rate=lr), config.seed) for lr in config.learning_rates]
    result = run_arms(arms, "validation", config.max_new_tokens, model_name, **keep)
    return {"config": _options(config), **result, "best_learning_rate": best_learning_rate(result["runs"])}


def best_learning_rate(runs: Sequence[dict]) -> float:
    """The sweep's pick: the highest validation win rate against lesson 06's answers (the smaller LR on a tie)."""
    return max(sorted(runs, key=lambda r: r["learning_rate"]), key=lambda r: r["after"]["win_rate"]["win_rate"])["learning_rate"]


def seeds_run(config: SeedsConfig | None = None, model_name: str | None = None, **keep) -> dict:
    """DPO at one learning rate over seeds, on the held-out prompts; the win rate pooled over the seeds."""
    config = config or SeedsConfig()
    base = DPORunConfig(**_train_fields(config))
    result = run_arms([(base, s) for s in config.seeds], "test", config.max_new_tokens, model_name, **keep)
    return {"config": _options(config), **result,
            "win_rate": win_rate([r["after"]["outcomes"] for r in result["runs"]])}


def variants_run(config: VariantsConfig | None = None, model_name: str | None = None, **keep) -> dict:
    """Each objective of `config.losses` with `course dpo`'s settings, over `config.seeds`, on the held-out prompts."""
    config = config or VariantsConfig()
    config.validate()
    base = DPORunConfig(**_train_fields(config))
    arms = [(replace(base, loss=loss), s) for loss in config.losses for s in config.seeds]
    result = run_arms(arms, "test", config.max_new_tokens, model_name, **keep)
    pooled = {loss: win_rate([r["after"]["outcomes"] for r in result["runs"] if r["loss"] == loss])
              for loss in config.losses}
    return {"config": _options(config), **result, "win_rate": pooled}
