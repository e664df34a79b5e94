"""`course grpo`: reinforcement learning with verifiable rewards on SmolLM2-135M-Instruct, on a CPU (lesson 09).

Parts, each written to data/results/grpo.json as soon as it is done (`--resume` keeps the parts already there):

    base_rates  greedy accuracy of the instruct model on each candidate task of data/verifiable (the task is
                chosen where it lies between 10 % and 60 %), beside the accuracy of a constant reply
    groups      16 samples per training prompt from the untuned model: the share of zero-advantage groups
                at group sizes 2..16, and what the two flawed checkers accept that the checked one does not
    sweep       one short GRPO run per learning rate, scored on the validation prompts
    grpo        GRPO with the checked reward, one run per seed; held-out accuracy before and after
    hack        the same run rewarded by a flawed checker, the checked reward logged beside it (weight 0)
    rs_sft      rejection-sampling SFT at the same compute: as many samples from the untuned model as GRPO drew,
                the correct ones kept, TRL's SFTTrainer for as many steps of as many sequences (its own LR sweep)
    beta_cost   seconds per step at β = 0 and β > 0, and the reference model TRL loads without LoRA
"""

from __future__ import annotations

import json
import random
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import psutil
import torch

from course_lib.data.verifiable import VERIFIABLE_TASKS, verifiable_rows
from course_lib.models.base import count_parameters, set_seed
from course_lib.models.loading import load_base_model, load_tokenizer
from course_lib.results import command_line, results_path, save_results, took
from course_lib.tuning import grpo
from course_lib.tuning.grpo import GRPORunConfig
from course_lib.tuning.sft import DEFAULT_MODEL

__all__ = ["PARTS", "GRPOExperimentConfig", "interval95", "zero_std_by_group_size", "grpo_run", "rs_sft_run",
           "run_grpo", "COMMANDS"]

PARTS = ("base_rates", "groups", "sweep", "grpo", "hack", "rs_sft", "beta_cost")
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}  # t, 0.975


@dataclass
class GRPOExperimentConfig(GRPORunConfig):
    """What `course grpo` runs: GRPORunConfig's run, over seeds, against a flawed reward and rejection sampling."""

    parts: list[str] = field(default_factory=lambda: list(PARTS), metadata={"help": f"any of {PARTS}"})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "LoRA init and sampling"})
    test_rows: int = field(default=60, metadata={"help": "held-out prompts per task, answered greedily"})
    validation_rows: int = field(default=25, metadata={"help": "validation prompts the sweeps are scored on"})
    group_prompts: int = field(default=16, metadata={"help": "training prompts sampled 16 times each (groups)"})
    sweep_lrs: list[float] = field(default_factory=lambda: [3e-4, 1e-3], metadata={"help": "GRPO LRs tried"})
    sweep_steps: int = field(default=8, metadata={"help": "steps of each sweep run"})
    rs_lrs: list[float] = field(default_factory=lambda: [1e-4, 3e-4, 1e-3], metadata={"help": "SFT LRs tried"})
    hack_reward: str = field(default="lenient", metadata={"help": "the flawed reward: contains or lenient"})
    beta_probe: float = field(default=0.04, metadata={"help": "the β > 0 timed against β = 0"})
    model: str = field(default=DEFAULT_MODEL, metadata={"help": "a model name or folder"})
    resume: bool = field(default=False, metadata={"help": "keep the parts data/results/grpo.json already holds"})
    out: str = field(default="", metadata={"help": "results file; '' = data/results/grpo.json"})


def interval95(values: list[float]) -> tuple[float, float]:
    """(mean, half-width of its 95 % interval): Student's t with n − 1 degrees of freedom (0 for one value)."""
    mean = statistics.mean(values)
    n = len(values)
    return mean, (T95[n - 1] * statistics.stdev(values) / n ** 0.5 if n > 1 else 0.0)


def zero_std_by_group_size(rewards: list[list[float]], sizes=(2, 4, 8, 16)) -> dict[int, float]:
    """Each prompt's samples cut into groups of G (in order): the share of groups whose rewards are all equal."""
    out = {}
    for g in sizes:
        groups = [row[i:i + g] for row in rewards for i in range(0, len(row) - g + 1, g)]
        out[g] = sum(len(set(x)) == 1 for x in groups) / len(groups)
    return out


def _evaluate(model, tok, rows, config) -> dict:
    replies = grpo.greedy_answers(model, tok, rows, config.max_completion_length)
    return {"accuracy": grpo.accuracy(replies, rows), "lenient": grpo.accuracy(replies, rows, "lenient"),
            "replies": replies}


def grpo_run(config: GRPOExperimentConfig, tok, train, seed: int, reward: str = "checked", eval_rows=(),
             **overrides) -> dict:
    """One GRPO run from the untuned model: TRL's log per step (every checker's mean reward) and the greedy
    accuracy on `eval_rows` after it."""
    monitors = [k for k in grpo.REWARDS if k != reward]
    set_seed(seed)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        trainer = grpo.grpo_trainer(load_base_model(config.model), tok, train, config, tmp, reward=reward, seed=seed,
                                    monitor=monitors, **overrides)
        trainer.train()
    run = {"seed": seed, "reward": reward, "learning_rate": trainer.args.learning_rate,
           "curve": grpo.log_curve(trainer.state.log_history),
           "samples": trainer.samples}
    run["train_seconds"] = round(time.perf_counter() - start, 1)
    if eval_rows:
        run["after"] = _evaluate(trainer.model, tok, list(eval_rows), config)
    run["wall_seconds"] = round(time.perf_counter() - start, 1)
    return run


def _rs_samples(config, tok, train, seed) -> dict:
    """GRPO's draw, from the untuned model: max_steps × prompts_per_step prompts, num_generations samples each."""
    set_seed(seed)
    prompts = random.Random(seed).sample(train, config.max_steps * config.prompts_per_step)
    start = time.perf_counter()
    samples = grpo.sample_answers(load_base_model(config.model), tok, prompts, config.num_generations, config)
    kept = [{"prompt": [{"role": "user", "content": r["prompt"]}], "completion": [{"role": "assistant", "content": s}]}
            for r, row in zip(prompts, samples) for s in row if grpo.checked_reward([s], [r["answer"]])[0]]
    return {"kept": kept, "drawn": len(prompts) * config.num_generations,
            "sample_seconds": round(time.perf_counter() - start, 1)}


def rs_sft_run(config, tok, samples: dict, seed: int, learning_rate: float, eval_rows) -> dict:
    """SFT with a LoRA adapter on the kept samples: as many steps, of as many sequences, as a GRPO run."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    set_seed(seed)
    start = time.perf_counter()
    model = load_base_model(config.model)
    if samples["kept"]:
        with tempfile.TemporaryDirectory() as tmp:
            args = SFTConfig(output_dir=tmp, seed=seed, learning_rate=learning_rate, max_steps=config.max_steps,
                             per_device_train_batch_size=config.prompts_per_step * config.num_generations,
                             lr_scheduler_type="constant", logging_steps=1, save_strategy="no", bf16=False,
                             activation_checkpointing=False, report_to="none", disable_tqdm=True, max_length=96,
                             use_cpu=not torch.cuda.is_available())
            trainer = SFTTrainer(model=model, args=args, processing_class=tok, peft_config=config.lora_config(),
                                 train_dataset=Dataset.from_list(samples["kept"]))
            trainer.train()
            model = trainer.model
    train_seconds = round(time.perf_counter() - start, 1)
    return {"seed": seed, "learning_rate": learning_rate, "kept": len(samples["kept"]), "drawn": samples["drawn"],
            "sample_seconds": samples["sample_seconds"], "train_seconds": train_seconds,
            "after": _evaluate(model, tok, list(eval_rows), config)}


def _beta_cost(config, tok, train) -> dict:
    out = {}
    for beta in (0.0, config.beta_probe):
        run = grpo_run(replace(config, max_steps=3), tok, train, config.seeds[0], beta=beta)
        out[str(beta)] = {k: run["curve"][k][1:] for k in ("step_time", "generation_time")}  # step 1: warm-up
    rss = psutil.Process().memory_info().rss
    with tempfile.TemporaryDirectory() as tmp:  # full fine-tuning (no LoRA) with β > 0: TRL loads a reference
        from datasets import Dataset
        from trl import GRPOTrainer

        args = config.to_grpo_config(tmp, beta=config.beta_probe)
        trainer = GRPOTrainer(model=load_base_model(config.model), reward_funcs=grpo.checked_reward, args=args,
                              processing_class=tok, train_dataset=Dataset.from_list([grpo.to_trl(r) for r in train[:4]]))
        ref = trainer.ref_model
        out["full_ref_parameters"] = count_parameters(ref) if ref is not None else 0
        out["full_ref_bytes"] = sum(p.numel() * p.element_size() for p in ref.parameters()) if ref is not None else 0
        out["full_rss_growth_bytes"] = psutil.Process().memory_info().rss - rss
    return out


def _base_rates(config, tok) -> dict:
    model, out = load_base_model(config.model), {}
    for task in VERIFIABLE_TASKS:
        rows = verifiable_rows(task, "test", config.test_rows)
        start = time.perf_counter()
        ev = _evaluate(model, tok, rows, config)
        top = Counter(r["answer"] for r in rows).most_common(1)[0]
        out[task] = {"accuracy": ev["accuracy"], "n": len(rows), "constant_reply": top[0],
                     "constant_reply_accuracy": top[1] / len(rows), "seconds": round(time.perf_counter() - start, 1),
                     "examples": [[r["prompt"], a] for r, a in zip(rows[:3], ev["replies"])], "replies": ev["replies"]}
        print(f"[grpo] base rate {task}: {ev['accuracy']:.3f} (a constant reply: {top[1] / len(rows):.3f})", flush=True)
    return out


def _groups(config, tok, train) -> dict:
    set_seed(config.seeds[0])
    rows = train[:config.group_prompts]
    start = time.perf_counter()
    samples = grpo.sample_answers(load_base_model(config.model), tok, rows, 16, config)
    rewards = {k: [f(s, [r["answer"]] * len(s)) for r, s in zip(rows, samples)] for k, f in grpo.REWARDS.items()}
    return {"prompts": [r["prompt"] for r in rows], "samples": samples, "rewards": rewards,
            "zero_std": {str(g): v for g, v in zero_std_by_group_size(rewards["checked"]).items()},
            "seconds": round(time.perf_counter() - start, 1)}


def run_grpo(config: GRPOExperimentConfig) -> int:
    """Run the parts asked for, saving the file after each; print the figures the lesson quotes."""
    if unknown := set(config.parts) - set(PARTS):
        raise ValueError(f"unknown part(s) {sorted(unknown)}: choose from {PARTS}.")
    if config.hack_reward not in ("contains", "lenient"):
        raise ValueError("--hack_reward must be contains or lenient.")
    path = Path(config.out) if config.out else results_path("grpo")
    result = json.loads(path.read_text(encoding="utf-8")) if config.resume and path.exists() else {}
    tok = load_tokenizer(config.model)
    train = verifiable_rows(config.task, "train")
    val, test = verifiable_rows(config.task, "validation", config.validation_rows), verifiable_rows(
        config.task, "test", config.test_rows)
    canonical = replace(config, parts=list(PARTS), resume=False)
    result.update({"model": config.model, "command": command_line("grpo", canonical),
                   "config": {k: v for k, v in asdict(canonical).items() if k not in ("parts", "resume", "out")}})
    times = result.setdefault("part_seconds", {})

    def save(part: str, value, start: float) -> None:
        result[part] = value
        times[part] = round(time.perf_counter() - start, 1)
        result["wall_seconds"] = round(sum(times.values()), 1)
        save_results("grpo", result, out=config.out or None)
        print(f"[grpo] {part} done in {times[part]:.0f} s", flush=True)

    for part in config.parts:
        if part in result and config.resume:
            continue
        start = time.perf_counter()
        if part == "base_rates":
            save(part, _base_rates(config, tok), start)
        elif part == "groups":
            save(part, _groups(config, tok, train), start)
        elif part == "sweep":
            runs = [grpo_run(replace(config, max_steps=config.sweep_steps, learning_rate=lr), tok, train,
                             config.seeds[0], eval_rows=val) for lr in config.sweep_lrs]
            best = max(runs, key=lambda r: (r["after"]["accuracy"], -r["learning_rate"]))
            save(part, {"runs": runs, "best_learning_rate": best["learning_rate"]}, start)
        elif part == "grpo":
            lr = result.get("sweep", {}).get("best_learning_rate", config.learning_rate)
            runs = [grpo_run(replace(config, learning_rate=lr), tok, train, s, eval_rows=test) for s in config.seeds]
            save(part, {"runs": runs, "learning_rate": lr}, start)
        elif part == "hack":
            lr = result.get("grpo", {}).get("learning_rate", config.learning_rate)
            save(part, grpo_run(replace(config, learning_rate=lr), tok, train, config.seeds[0],
                                reward=config.hack_reward, eval_rows=test), start)
        elif part == "rs_sft":
            first = _rs_samples(config, tok, train, config.seeds[0])
            sweep = {lr: rs_sft_run(config, tok, first, config.seeds[0], lr, val)["after"]["accuracy"]
                     for lr in config.rs_lrs}
            lr = max(config.rs_lrs, key=lambda x: (sweep[x], -x))
            runs = [rs_sft_run(config, tok, first if s == config.seeds[0] else _rs_samples(config, tok, train, s),
                               s, lr, test) for s in config.seeds]
            save(part, {"sweep": {str(k): v for k, v in sweep.items()}, "learning_rate": lr, "runs": runs}, start)
        elif part == "beta_cost":
            save(part, _beta_cost(config, tok, train), start)
    if "grpo" in result and "base_rates" in result:
        after = [r["after"]["accuracy"] for r in result["grpo"]["runs"]]
        before = result["base_rates"][config.task]["accuracy"]
        mean, half = interval95([a - before for a in after])
        print(f"[grpo] held-out accuracy {before:.3f} -> {statistics.mean(after):.3f}; "
              f"change {mean:+.3f} ± {half:.3f} (95 %, {len(after)} seeds)")
    return 0


COMMANDS = {"grpo": ("lesson 09: GRPO with verifiable rewards on smollm2-135m-instruct with TRL's GRPOTrainer and "
                     "LoRA: candidate tasks, group sizes, 3 seeds, a flawed reward, rejection-sampling SFT -> "
                     f"data/results/grpo.json{took('grpo')}; saved after each part, --resume keeps the parts done",
                     (GRPOExperimentConfig,), run_grpo)}
