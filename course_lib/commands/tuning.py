"""`course sft` (lesson 06); `course dpo-pairs`, `dpo-sweep`, `dpo`, `dpo-variants`, `judge` (lesson 07).

The runs are called through their modules (`sft.sft_run`, `dpo_runs.seeds_run`, ...), so a test can replace
a step. A run's outputs appear together or not at all (`results.staged_outputs`); an interrupted run keeps
its checkpoints (sft) or its finished runs (dpo-sweep, dpo, dpo-variants), and `--resume` with the same
options continues.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from course_lib.data.datasets import data_dir
from course_lib.results import command_line, require_adapter, results_path, save_results, staged_outputs, took
from course_lib.tuning import dpo_runs, judge, pairs, sft
from course_lib.tuning.sft import SFTRunConfig

__all__ = ["run_sft", "run_dpo_pairs", "run_dpo_sweep", "run_dpo", "run_dpo_variants", "run_judge", "COMMANDS"]


def _options(config) -> dict:
    return {k: v for k, v in asdict(config).items() if k != "resume"}


def run_sft(config: SFTRunConfig) -> int:
    if config.max_steps <= 0 or config.train_rows <= 0 or config.eval_steps <= 0:
        raise ValueError("--max_steps, --train_rows and --eval_steps must be positive.")
    adapter_dir = Path(config.adapter_dir or data_dir() / "adapters" / "sft-docstring")
    twin_dir = adapter_dir.with_name(adapter_dir.name + "-whole-text")
    out = Path(config.out) if config.out else results_path("sft")
    checkpoints, options = sft.checkpoints_dir(), _options(config)
    saved = checkpoints / "options.json"
    if config.resume and saved.exists() and json.loads(saved.read_text(encoding="utf-8")) != options:
        raise ValueError(f"the checkpoints in {checkpoints} are from a run with other options: run `course sft` "
                         "with those options and --resume, or without --resume to start again.")
    if not config.resume:
        shutil.rmtree(checkpoints, ignore_errors=True)
    checkpoints.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(options, indent=1), encoding="utf-8")
    sft.quiet_command()
    try:
        with staged_outputs([adapter_dir, twin_dir, out]) as (adapter_tmp, twin_tmp, out_tmp):
            result = sft.sft_run(config, save_to=adapter_tmp, twin_to=twin_tmp, checkpoints=checkpoints, progress=True)
            sft.write_adapter_card(adapter_tmp, result)
            if config.compare_whole_text:
                sft.write_adapter_card(twin_tmp, result, "whole-text loss, the comparison run")
            save_results("sft", {"command": command_line("sft", config), **result}, out=out_tmp)
    except KeyboardInterrupt:
        resumable = any(checkpoints.glob("*/checkpoint-*"))
        raise KeyboardInterrupt(f"{adapter_dir.name}, its twin and {out.name} are unchanged (a run writes them "
                                "together at its end)" + ("; `course sft --resume` (same options) continues from "
                                                         "the last checkpoint" if resumable else "")) from None
    shutil.rmtree(checkpoints, ignore_errors=True)
    print(f"wrote {out}, {adapter_dir} and {twin_dir.name}" if config.compare_whole_text else f"wrote {out} and {adapter_dir}")
    return 0


def _resumable(name: str, config, run: Callable[..., dict], total: int) -> dict:
    """Run `run(config, finished=..., on_run=...)`, keeping each finished run in data/checkpoints/<name>/runs.json
    until the command ends. `--resume` with the same options other than --arms and --seeds runs only the runs
    not kept; with no checkpoint, it starts from the runs of the results file."""
    folder, options = data_dir() / "checkpoints" / name, _options(config)
    saved = folder / "runs.json"
    done = json.loads(saved.read_text(encoding="utf-8")) if config.resume and saved.exists() else None
    if done is not None and _differs(done["options"], options):  # runs are keyed by arm and seed: those may differ
        raise ValueError(f"the runs kept in {folder} are from `course {name}` with other options: give those options "
                         "with --resume, or leave out --resume to start again.")
    if done is None and config.resume:
        done = _from_results_file(name, config)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    runs = done["runs"] if done else []

    def keep(one: dict) -> None:  # after each run: what --resume starts from
        runs.append(one)
        saved.write_text(json.dumps({"options": options, "runs": runs}), encoding="utf-8")
    saved.write_text(json.dumps({"options": options, "runs": runs}), encoding="utf-8")
    try:
        result = run(config, finished=list(runs), on_run=keep)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"data/results/{results_name(name)}.json is unchanged; {len(runs)} of {total} runs are "
                                f"kept, and `course {name} --resume` (same options) runs the rest") from None
    shutil.rmtree(folder, ignore_errors=True)
    return result


def _from_results_file(name: str, config) -> dict | None:
    """The runs of the command's results file, if it was made with the same options apart from --arms and --seeds."""
    path = Path(config.out) if config.out else results_path(results_name(name))
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return None if _differs(recorded.get("config", {}), _options(config)) else {"runs": recorded["runs"]}


def _differs(kept: dict, options: dict) -> set[str]:
    """The options that make kept runs unusable: all but --arms and --seeds (a run is keyed by its arm and seed)."""
    return {k for k, v in options.items() if kept.get(k) != v} - {"arms", "seeds", "out"}


def results_name(command: str) -> str:
    """The results file a lesson-07 command writes."""
    return {"dpo-sweep": "dpo_sweep", "dpo-variants": "dpo_variants", "dpo-pairs": "dpo_pairs"}.get(command, command)


def _pairs_ready() -> None:
    if not (pairs.pairs_dir() / "train.jsonl").exists():
        raise ValueError("data/preferences-on-policy/ is missing: run `course dpo-pairs` first (lesson 07's pairs).")


def _save(command: str, config, result: dict) -> int:
    recorded = dataclasses.replace(config, resume=False) if hasattr(config, "resume") else config  # what it reproduces
    line = command_line(command, recorded)
    if config.out:  # a second file of the same command: without its --out, rerunning the line would overwrite the first
        line += " --out " + shlex.quote(config.out)
    path = save_results(results_name(command), {"command": line, **result}, out=config.out or None)
    print(f"wrote {path}")
    return 0


def run_dpo_pairs(config: pairs.PairsConfig) -> int:
    if min(config.train_prompts, config.validation_prompts, config.test_prompts, config.samples - 1,
           config.max_new_tokens) <= 0 or config.temperature <= 0:
        raise ValueError("--samples must be at least 2 and the prompt counts, --max_new_tokens and --temperature "
                         "positive.")
    require_adapter("sft-docstring")
    sft.quiet_command()
    out = Path(config.out) if config.out else results_path("dpo_pairs")
    with staged_outputs([pairs.pairs_dir(), out]) as (folder, out_tmp):  # the pairs and their file, together
        folder.mkdir()
        result = pairs.pairs_run(config, out_dir=folder)
        save_results("dpo_pairs", {"command": command_line("dpo-pairs", config), **result}, out=out_tmp)
    print(f"wrote {out} and {pairs.pairs_dir()}")
    return 0


def _runs(name: str, config: dpo_runs.RunsConfig, run: Callable[..., dict]) -> int:
    config.validate()
    require_adapter("sft-docstring")
    _pairs_ready()
    sft.quiet_command()
    return _save(name, config, _resumable(name, config, run, len(config.arms) * len(config.seeds)))


def run_dpo_sweep(config: dpo_runs.SweepConfig) -> int:
    return _runs("dpo-sweep", config, dpo_runs.sweep_run)


def run_dpo(config: dpo_runs.SeedsConfig) -> int:
    return _runs("dpo", config, dpo_runs.seeds_run)


def run_dpo_variants(config: dpo_runs.VariantsConfig) -> int:
    return _runs("dpo-variants", config, dpo_runs.variants_run)


def run_judge(config: judge.JudgeConfig) -> int:
    _pairs_ready()
    sft.quiet_command()
    return _save("judge", config, judge.judge_run(config))


COMMANDS = {"sft": ("lesson 06: LoRA instruction tuning of smollm2-135m-instruct with TRL's SFTTrainer -> "
                    f"data/results/sft.json and data/adapters/sft-docstring*, written together at the end{took('sft')}; "
                    "--resume continues an interrupted run", (SFTRunConfig,), run_sft),
            "dpo-pairs": ("lesson 07: on-policy preference pairs, sampled from lesson 06's model and scored by the "
                          "docstring rule -> data/preferences-on-policy/ (with its data card) and "
                          f"data/results/dpo_pairs.json{took('dpo_pairs')}", (pairs.PairsConfig,), run_dpo_pairs),
            "dpo-sweep": ("lesson 07: DPO and DPO + SFT (TRL's DPOTrainer, a LoRA adapter on lesson 06's model) at "
                          "several learning rates, judged on the validation prompts -> "
                          f"data/results/dpo_sweep.json{took('dpo_sweep')}", (dpo_runs.SweepConfig,), run_dpo_sweep),
            "dpo": ("lesson 07: DPO and DPO + SFT at one learning rate, 3 seeds, before/after on the held-out prompts -> "
                    f"data/results/dpo.json{took('dpo')}; --resume keeps the runs an interrupted one finished",
                    (dpo_runs.SeedsConfig,), run_dpo),
            "dpo-variants": ("lesson 07: IPO and ORPO with `course dpo`'s settings -> "
                             f"data/results/dpo_variants.json{took('dpo_variants')}", (dpo_runs.VariantsConfig,),
                             run_dpo_variants),
            "judge": ("lesson 07: the untuned local model as an LLM judge of the held-out pairs, both orders -> "
                      f"data/results/judge.json{took('judge')}", (judge.JudgeConfig,), run_judge)}
