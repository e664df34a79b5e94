"""`course leak`: a fine-tune with test items leaked into its training rows, against a clean twin (lesson 10).

Both arms train lesson 06's LoRA adapter (course_lib.tuning.sft, the same settings but the rows) on
SmolLM2-135M-Instruct, from the same seed, for the same steps, on the same number of rows: lesson 06's
training rows plus either the chat rows of the first `leaked` functions of the docstring_choice test split
(the leak) or as many further training rows (the control). Both are then scored on the leaked items and on
the next `leaked` test items, which neither saw: the harness's docstring_choice accuracy and lesson 06's
response perplexity of the reference docstring, per item. The file is rewritten after each arm.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from course_lib.data.tasks import function_parts, task_rows as harness_rows
from course_lib.evaluation.harness import harness_model, run_harness
from course_lib.models.base import set_seed
from course_lib.models.loading import load_base_model, load_tokenizer
from course_lib.results import command_line, load_results, results_path, save_results, took
from course_lib.tuning import sft

__all__ = ["LeakConfig", "leak_rows", "arm_rows", "train_arm", "score_items", "run_leak", "COMMANDS"]

MODEL = "smollm2-135m-instruct"


@dataclass
class LeakConfig:
    """What `course leak` runs; training names as lesson 06's SFTRunConfig (TRL / peft)."""

    leaked: int = field(default=24, metadata={"help": "test items leaked into training (the first N of "
                                                      "docstring_choice/test); the next N are the clean held-out set"})
    train_rows: int = field(default=24, metadata={"help": "lesson 06's training rows both arms start from"})
    max_steps: int = field(default=24, metadata={"help": "optimizer steps of each arm (batches of 4: two epochs)"})
    learning_rate: float = field(default=5e-4, metadata={"help": "lesson 06's LoRA learning rate"})
    seed: int = field(default=0, metadata={"help": "LoRA init and batch order, the same for both arms"})
    resume: bool = field(default=False, metadata={"help": "keep an arm data/results/leakage.json already holds"})
    out: str = field(default="", metadata={"help": "results file; '' = data/results/leakage.json"})


def leak_rows(n: int) -> tuple[list[dict], list[dict]]:
    """The chat rows (lesson 06's format) of the first n and the next n docstring_choice test functions."""
    by_function = {function_parts(r["messages"][0]["content"])[0]: r for r in sft.task_rows("test")}
    items = harness_rows("docstring_choice", "test")[:2 * n]
    rows = [by_function[it["function"]] for it in items]
    return rows[:n], rows[n:]


def arm_rows(arm: str, config: LeakConfig) -> list[dict]:
    """Training rows of an arm: lesson 06's first rows, then the leaked test rows or as many other training rows."""
    train = sft.task_rows("train")
    extra = leak_rows(config.leaked)[0] if arm == "leaked" else train[config.train_rows:config.train_rows + config.leaked]
    return train[:config.train_rows] + extra


def train_arm(arm: str, config: LeakConfig, adapter_dir: Path) -> dict:
    """Lesson 06's LoRA SFT on the arm's rows (no evaluation during training); the adapter saved to adapter_dir."""
    tok = load_tokenizer(MODEL)
    set_seed(config.seed)
    run = sft.SFTRunConfig(max_steps=config.max_steps, learning_rate=config.learning_rate, seed=config.seed,
                           early_stopping_patience=0, logging_steps=1)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = sft.sft_trainer(load_base_model(MODEL), tok, arm_rows(arm, config), [], run, tmp,
                                  eval_strategy="no", load_best_model_at_end=False, save_strategy="no")
        trainer.train()
    trainer.model.save_pretrained(adapter_dir)
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    return {"train_loss_first": round(losses[0], 4), "train_loss_last": round(losses[-1], 4),
            "steps": trainer.state.global_step}


def score_items(adapter_dir: Path | None, config: LeakConfig) -> dict:
    """Per item, leaked then clean: the harness's docstring_choice acc / acc_norm and the response NLL (nats)."""
    lm = harness_model(MODEL, peft=adapter_dir)
    choice = run_harness(lm, "docstring_choice", limit=2 * config.leaked)
    leaked, clean = leak_rows(config.leaked)
    nll = [sft.response_nll(lm.model, lm.tokenizer, [row]) for row in leaked + clean]
    return {"acc": [it["acc"] for it in choice["items"]], "acc_norm": [it["acc_norm"] for it in choice["items"]],
            "response_nll": [round(x, 4) for x in nll]}


def run_leak(config: LeakConfig) -> int:
    if config.leaked <= 0 or config.max_steps <= 0:
        raise ValueError("--leaked and --max_steps must be positive.")
    out = Path(config.out) if config.out else results_path("leakage")
    options = {k: v for k, v in asdict(config).items() if k not in ("resume", "out")}
    arms: dict = {}
    if config.resume and out == results_path("leakage") and out.exists():
        previous = load_results("leakage")
        if previous.get("options") == options:
            arms = previous["arms"]
    sft.quiet_command()
    start = time.perf_counter() - sum(a.get("wall_seconds", 0) for a in arms.values())
    for arm in ("base", "leaked", "clean"):
        if arm in arms:
            continue
        t = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            trained = train_arm(arm, config, Path(tmp)) if arm != "base" else {}
            scores = score_items(Path(tmp) if arm != "base" else None, config)
        arms[arm] = {**trained, **scores, "wall_seconds": round(time.perf_counter() - t, 1)}
        n = config.leaked
        summary = {part: sum(scores["acc"][s]) / n for part, s in (("leaked", slice(0, n)), ("clean", slice(n, 2 * n)))}
        ppl = {part: math.exp(sum(scores["response_nll"][s]) / n) for part, s in (("leaked", slice(0, n)),
                                                                                     ("clean", slice(n, 2 * n)))}
        print(f"[leak] {arm}: acc leaked {summary['leaked']:.3f} / clean {summary['clean']:.3f}; response ppl "
              f"leaked {ppl['leaked']:.2f} / clean {ppl['clean']:.2f} ({arms[arm]['wall_seconds']:.0f} s)", flush=True)
        save_results("leakage", {"model": MODEL, "command": command_line("leak", replace(config, resume=False)), "options": options,
                                 "leaked_functions": [r["messages"][0]["content"].split("`")[1] for r in leak_rows(n)[0]],
                                 "arms": arms, "complete": len(arms) == 3,
                                 "wall_seconds": round(time.perf_counter() - start, 1)}, out=out)
    print(f"wrote {out}")
    return 0


COMMANDS = {"leak": ("lesson 10: the contamination demonstration — lesson 06's LoRA fine-tune with test items leaked "
                     "into training, beside a clean twin, both scored on the leaked and on clean held-out items -> "
                     f"data/results/leakage.json{took('leakage')}", (LeakConfig,), run_leak)}
