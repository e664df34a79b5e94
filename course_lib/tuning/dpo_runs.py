"""The long runs of lesson 07: a learning-rate sweep, DPO over seeds, and DPO's variants, on on-policy pairs.

    course dpo-sweep      DPO and DPO + SFT at several learning rates, seed 0, judged on the validation prompts
    course dpo            DPO and DPO + SFT at one learning rate, 3 seeds, judged on the held-out prompts
    course dpo-variants   IPO and ORPO with `course dpo`'s settings, judged like DPO

Each command runs arms (an objective at a learning rate: "dpo@0.001") × seeds; a run is keyed by
(objective, learning rate, seed), so an interrupted command, or one given more arms, runs only what is missing.

Every run starts from lesson 06's model (`dpo.sft_reference`) with a fresh LoRA adapter, trains on
data/preferences-on-policy/train.jsonl (`course dpo-pairs`) and is measured against the model it
started from: preference metrics on held-out pairs (`dpo.evaluate_pairs`), and its greedy answers to
every held-out prompt scored by the rule and compared with lesson 06's (`pairs.win_rate`).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Callable, Sequence

from course_lib.data.datasets import format_ok
from course_lib.models.base import count_parameters, set_seed
from course_lib.models.loading import load_tokenizer
from course_lib.tuning import sft
from course_lib.tuning.dpo import LOSSES, DPORunConfig, dpo_trainer, evaluate_pairs, reference_logps, sft_reference
from course_lib.tuning.orpo import orpo_trainer
from course_lib.tuning.pairs import greedy_answers, on_policy_rows, outcomes, sample_rows, score_parts, win_rate

__all__ = ["ARMS", "RunsConfig", "SweepConfig", "SeedsConfig", "VariantsConfig", "train_arm", "evaluate_model",
           "run_arms", "sweep_run", "seeds_run", "variants_run", "best_learning_rate"]

ARMS = (*LOSSES, "orpo")  # what a run can train
CURVE_KEYS = ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen",
              "logps/rejected", "nll_loss")


def _arm(text: str) -> tuple[str, float]:
    loss, _, lr = text.partition("@")
    try:
        return loss, float(lr)
    except ValueError:
        raise ValueError(f"an arm is LOSS@LEARNING_RATE, like dpo@0.001 (got {text!r})") from None


@dataclass
class RunsConfig:
    """Runs of lesson 07: arms (objective @ learning rate) × seeds, each trained as `DPORunConfig` says."""

    arms: list[str] = field(default_factory=lambda: ["dpo@0.001"], metadata={
        "help": f"LOSS@LEARNING_RATE, LOSS one of {', '.join(ARMS)}: dpo+sft adds the chosen answers' token NLL "
                "(weight 1), ipo takes β as τ, orpo takes β as λ"})
    seeds: list[int] = field(default_factory=lambda: [0], metadata={"help": "LoRA init and batch order"})
    beta: float = field(default=0.1, metadata={"help": "β of DPO (TRL's default), τ of IPO, λ of ORPO"})
    max_steps: int = field(default=32, metadata={"help": "optimizer steps per run"})
    per_device_train_batch_size: int = field(default=2, metadata={"help": "pairs per step"})
    r: int = field(default=4, metadata={"help": "LoRA rank (as lesson 06)"})
    lora_alpha: float = field(default=8.0, metadata={"help": "LoRA scaling alpha / r = 2"})
    max_new_tokens: int = field(default=40, metadata={"help": "greedy tokens per held-out answer"})
    out: str = field(default="", metadata={"help": "results file; '' = the command's file in data/results"})
    resume: bool = field(default=False, metadata={
        "help": "keep the runs an interrupted command finished, or, with none kept, those of the results file when "
                "its other options are these: only the missing arms or seeds run"})

    def run_configs(self) -> list[tuple[DPORunConfig, int]]:
        """(training config, seed) of every run, arms first."""
        shared = {f.name: getattr(self, f.name) for f in fields(DPORunConfig) if f.name not in ("loss", "learning_rate")}
        return [(DPORunConfig(loss=loss, learning_rate=lr, **shared), seed)
                for loss, lr in map(_arm, self.arms) for seed in self.seeds]

    def validate(self) -> None:
        """One sentence for options that would train nonsense."""
        arms = [_arm(a) for a in self.arms]
        if not arms or any(loss not in ARMS for loss, _ in arms) or any(not lr > 0 for _, lr in arms):
            raise ValueError(f"--arms must name LOSS@LEARNING_RATE with LOSS one of {', '.join(ARMS)} and a positive "
                             f"learning rate (got {' '.join(self.arms) or 'none'}).")
        if not self.seeds or any(s < 0 for s in self.seeds):
            raise ValueError("--seeds must name at least one seed, each at least 0.")
        if self.beta <= 0 or self.max_steps <= 0 or self.per_device_train_batch_size <= 0 or self.r <= 0:
            raise ValueError("--beta, --max_steps, --per_device_train_batch_size and --r must be positive.")


@dataclass
class SweepConfig(RunsConfig):
    """`course dpo-sweep`: DPO, and DPO + SFT, at several learning rates, seed 0, on the validation split."""

    arms: list[str] = field(default_factory=lambda: ["dpo@1e-06", "dpo@0.0001", "dpo@0.0003", "dpo@0.001", "dpo@0.005",
                                                     "dpo+sft@0.0001", "dpo+sft@0.0003", "dpo+sft@0.001",
                                                     "dpo+sft@0.005"], metadata={
        "help": "LOSS@LEARNING_RATE to try (1e-6 is TRL's DPOConfig default, set for full fine-tuning)"})


@dataclass
class SeedsConfig(RunsConfig):
    """`course dpo`: DPO and DPO + SFT at one shared learning rate, 3 seeds, on the held-out split."""

    arms: list[str] = field(default_factory=lambda: ["dpo@0.001", "dpo+sft@0.001"], metadata={
        "help": "LOSS@LEARNING_RATE: one learning rate shared by both objectives, so only the SFT term differs "
                "(1e-3: DPO + SFT's pick before the sweep had 3e-4; lesson 07 says which runs are at which pick)"})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "LoRA init and batch order"})


@dataclass
class VariantsConfig(RunsConfig):
    """`course dpo-variants`: IPO and ORPO with `course dpo`'s settings, one seed, on the held-out split."""

    arms: list[str] = field(default_factory=lambda: ["ipo@0.001", "orpo@0.001"], metadata={
        "help": "LOSS@LEARNING_RATE: `course dpo`'s learning rate"})


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
        run = {**asdict(config), "seed": seed, "curve": curve,
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
    reused = sum(r["wall_seconds"] for r in runs if (r["loss"], r["learning_rate"], r["seed"]) in kept)
    return {"model": model_name, "split": split, "train_pairs": len(train), "runs": runs,  # time: every run in it
            "wall_seconds": round(time.perf_counter() - start + reused, 1)}


def _options(config) -> dict:
    return {k: v for k, v in asdict(config).items() if k not in ("out", "resume")}


def _pooled(runs: Sequence[dict]) -> dict:
    """The win rate of each arm over its seeds, averaged per prompt first."""
    arms = {}
    for r in runs:
        arms.setdefault(f"{r['loss']}@{r['learning_rate']:g}", []).append(r["after"]["outcomes"])
    return {arm: win_rate(outcomes) for arm, outcomes in arms.items()}


def best_learning_rate(runs: Sequence[dict]) -> dict[str, float]:
    """Per objective, the learning rate with the highest validation win rate against lesson 06 (the smaller on a tie),
    among those that changed at least one answer: one that changed none did not train (its 0.5 is lesson 06's own)."""
    best = {}
    moved = {r["loss"] for r in runs if r["after"].get("changed", 1)}
    for r in sorted(runs, key=lambda r: r["learning_rate"]):
        if r["loss"] in moved and not r["after"].get("changed", 1):
            continue
        w = r["after"]["win_rate"]["win_rate"]
        if r["loss"] not in best or w > best[r["loss"]][1]:
            best[r["loss"]] = (r["learning_rate"], w)
    return {loss: lr for loss, (lr, _) in best.items()}


def sweep_run(config: SweepConfig | None = None, model_name: str | None = None, **keep) -> dict:
    """Each arm (objective @ learning rate), one seed, measured on the validation prompts and pairs."""
    config = config or SweepConfig()
    result = run_arms(config.run_configs(), "validation", config.max_new_tokens, model_name, **keep)
    return {"config": _options(config), **result, "best_learning_rate": best_learning_rate(result["runs"])}


def seeds_run(config: SeedsConfig | None = None, model_name: str | None = None, **keep) -> dict:
    """Each arm over the seeds, on the held-out prompts; each arm's win rate pooled over its seeds."""
    config = config or SeedsConfig()
    result = run_arms(config.run_configs(), "test", config.max_new_tokens, model_name, **keep)
    return {"config": _options(config), **result, "win_rate": _pooled(result["runs"])}


def variants_run(config: VariantsConfig | None = None, model_name: str | None = None, **keep) -> dict:
    """As `seeds_run`, for the objectives beside DPO (IPO, ORPO)."""
    return seeds_run(config or VariantsConfig(), model_name, **keep)
