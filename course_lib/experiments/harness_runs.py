"""`course evaluate`: lm-evaluation-harness on the course's tasks, for three models, zero- and few-shot (lesson 10).

The arms: SmolLM2-135M-Instruct (the base), the same with lesson 06's adapter (`peft=`), and course-tiny.
Each run is one (arm, task, shots, chat template) through `course_lib.evaluation.harness.run_harness`;
the file keeps the harness's metrics with their standard errors and every item's outcome (what a paired
comparison between two arms on the same items needs). The file is rewritten after each run, so an
interrupted command keeps what it finished, and `--resume` runs only the rest.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace

from course_lib.data.datasets import data_dir
from course_lib.evaluation.harness import harness_model, run_harness
from course_lib.results import command_line, load_results, results_path, save_results, took

__all__ = ["EvalConfig", "ARMS", "planned_runs", "evaluate_run", "run_evaluate", "COMMANDS"]

# arm -> (model, adapter folder under data/adapters or None)
ARMS = {"base": ("smollm2-135m-instruct", None),
        "adapter": ("smollm2-135m-instruct", "sft-docstring"),
        "course-tiny": ("course-tiny", None)}


@dataclass
class EvalConfig:
    """What `course evaluate` runs (names as lm-eval's simple_evaluate: num_fewshot, limit, apply_chat_template)."""

    arms: list[str] = field(default_factory=lambda: list(ARMS), metadata={"help": f"models to run, of {list(ARMS)}"})
    choice_items: int = field(default=128, metadata={"help": "docstring_choice test items (lm-eval's limit: the first N)"})
    gen_items: int = field(default=48, metadata={"help": "docstring_gen test items (the first N; lesson 06's 8 first)"})
    num_fewshot: list[int] = field(default_factory=lambda: [0, 2], metadata={"help": "shots per run (from validation)"})
    fewshot_items: int = field(default=48, metadata={"help": "test items of the few-shot runs (the first N): a "
                                                             "few-shot prompt is several times as long"})
    chat_choice_arms: list[str] = field(default_factory=lambda: ["base"], metadata={
        "help": "arms that also run docstring_choice zero-shot with the chat template (the template on/off)"})
    batch_size: int = field(default=8, metadata={"help": "requests per forward pass (HFLM batch_size)"})
    resume: bool = field(default=False, metadata={"help": "keep the runs data/results/evaluation.json holds that this "
                                                          "command plans too (same arm, task, shots, template, items)"})
    out: str = field(default="", metadata={"help": "results file; '' = data/results/evaluation.json"})


def planned_runs(config: EvalConfig) -> list[dict]:
    """Every (arm, task, num_fewshot, apply_chat_template) in the order they run: cheapest first per arm."""
    runs = []
    for arm in config.arms:
        if arm not in ARMS:
            raise ValueError(f"unknown arm {arm!r}; `course evaluate` knows {list(ARMS)}.")
        chat = arm != "course-tiny"  # course-tiny's template was never trained: its answers are asked plainly
        for shots in config.num_fewshot:
            n_choice, n_gen = (config.choice_items, config.gen_items) if shots == 0 else (config.fewshot_items,) * 2
            runs.append({"arm": arm, "task": "docstring_choice", "num_fewshot": shots, "apply_chat_template": False,
                         "limit": n_choice})
            runs.append({"arm": arm, "task": "docstring_gen", "num_fewshot": shots, "apply_chat_template": chat,
                         "limit": min(n_gen, config.gen_items)})
        if arm in config.chat_choice_arms and chat:
            runs.append({"arm": arm, "task": "docstring_choice", "num_fewshot": 0, "apply_chat_template": True,
                         "limit": config.choice_items})
    return runs


def run_key(run: dict) -> tuple:
    """What identifies a run in the file: arm, task, shots, chat template, items."""
    return run["arm"], run["task"], run["num_fewshot"], run["apply_chat_template"], run["limit"]


def evaluate_run(lm, run: dict) -> dict:
    """One planned run through the harness: the plan's fields, the metrics and the items, and its wall time."""
    start = time.perf_counter()
    out = run_harness(lm, run["task"], num_fewshot=run["num_fewshot"], limit=run["limit"],
                      apply_chat_template=run["apply_chat_template"])
    items = [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in it.items() if k != "prompt"}
             for it in out["items"]]
    for it in items:
        if "loglikelihoods" in it:
            it["loglikelihoods"] = [round(x, 4) for x in it["loglikelihoods"]]
    return {**run, "n": out["n"], "metrics": out["metrics"], "items": items, "prompt_0": out["items"][0]["prompt"],
            "wall_seconds": round(time.perf_counter() - start, 1)}


def run_evaluate(config: EvalConfig) -> int:
    out = results_path("evaluation") if not config.out else config.out
    options = {k: v for k, v in asdict(config).items() if k not in ("resume", "out")}
    done: list[dict] = []
    if config.resume and results_path("evaluation").exists() and not config.out:
        planned = {run_key(r) for r in planned_runs(config)}
        done = [r for r in load_results("evaluation")["runs"] if run_key(r) in planned]  # the same runs, kept
    plan = planned_runs(config)
    keys = {run_key(r) for r in done}
    start = time.perf_counter() - sum(r["wall_seconds"] for r in done)
    lm, loaded = None, None
    for i, run in enumerate(plan, 1):
        if run_key(run) in keys:
            continue
        model, adapter = ARMS[run["arm"]]
        if loaded != run["arm"]:
            lm = harness_model(model, peft=data_dir() / "adapters" / adapter if adapter else None,
                               batch_size=config.batch_size)
            loaded = run["arm"]
        result = evaluate_run(lm, run)
        done.append(result)
        metrics = ", ".join(f"{k} {v:.3f}" for k, v in result["metrics"].items() if not k.endswith("_stderr"))
        print(f"[{i}/{len(plan)}] {run['arm']} {run['task']} {run['num_fewshot']}-shot"
              f"{' chat' if run['apply_chat_template'] else ''}: {metrics} ({result['wall_seconds']:.0f} s)", flush=True)
        save_results("evaluation", {"model": "smollm2-135m-instruct", "arms": {a: ARMS[a] for a in config.arms},
                                    "command": command_line("evaluate", replace(config, resume=False)), "options": options,
                                    "complete": len(done) == len(plan), "runs": done,
                                    "wall_seconds": round(time.perf_counter() - start, 1)}, out=out)
    print(f"wrote {out}")
    return 0


COMMANDS = {"evaluate": ("lesson 10: lm-evaluation-harness on the course's tasks (data/tasks) for SmolLM2, SmolLM2 + "
                         f"lesson 06's adapter and course-tiny, zero- and few-shot -> data/results/evaluation.json"
                         f"{took('evaluation')}; --resume runs only what an interrupted one left",
                         (EvalConfig,), run_evaluate)}
