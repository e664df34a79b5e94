"""`course sft`, `course dpo`, `course orpo` (lessons 06, 07): run, write the results file and the adapter card.

The runs are called through their modules (`sft.sft_run`, `dpo.dpo_run`), so a test can replace a step.
A run's outputs appear together or not at all (`results.staged_outputs`); an interrupted run keeps its
checkpoints (sft) or its finished β × seed runs (dpo), and `--resume` with the same options continues.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

from course_lib.data.datasets import data_dir
from course_lib.results import command_line, require_adapter, results_path, save_results, staged_outputs, took
from course_lib.tuning import dpo, sft
from course_lib.tuning.dpo import DPORunConfig, ORPORunConfig
from course_lib.tuning.sft import SFTRunConfig

__all__ = ["run_sft", "run_dpo", "run_orpo", "COMMANDS"]


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


def run_dpo(config: DPORunConfig) -> int:
    config.validate()
    require_adapter("sft-docstring")  # the reference: checked before anything slow
    sft.quiet_command()
    folder, options = dpo.checkpoints_dir(), _options(config)
    saved = folder / "runs.json"
    done = json.loads(saved.read_text(encoding="utf-8")) if config.resume and saved.exists() else None
    if done is not None and done["options"] != options:
        raise ValueError(f"the runs kept in {folder} are from `course dpo` with other options: give those options "
                         "with --resume, or leave out --resume to start again.")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    runs = done["runs"] if done else []

    def keep(run: dict) -> None:  # after each β × seed: what --resume starts from
        runs.append(run)
        saved.write_text(json.dumps({"options": options, "runs": runs}), encoding="utf-8")
    saved.write_text(json.dumps({"options": options, "runs": runs}), encoding="utf-8")
    try:
        result = dpo.dpo_run(config, finished=list(runs), on_run=keep)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"data/results/dpo.json is unchanged; {len(runs)} of "
                                f"{len(config.betas) * len(config.seeds)} β × seed runs are kept, and `course dpo "
                                "--resume` (same options) runs the rest") from None
    path = save_results("dpo", {"command": command_line("dpo", config), **result}, out=config.out or None)
    shutil.rmtree(folder, ignore_errors=True)
    print(f"wrote {path}")
    return 0


def run_orpo(config: ORPORunConfig) -> int:
    config.validate()
    if config.resume:
        raise ValueError("`course orpo` has no --resume: its runs are short; run it again without it.")
    require_adapter("sft-docstring")
    path = save_results("orpo", {"command": command_line("orpo", config), **dpo.orpo_run(config)}, out=config.out or None)
    print(f"wrote {path}")
    return 0


COMMANDS = {"sft": ("lesson 06: LoRA instruction tuning of smollm2-135m-instruct with TRL's SFTTrainer -> "
                    f"data/results/sft.json and data/adapters/sft-docstring*, written together at the end{took('sft')}; "
                    "--resume continues an interrupted run", (SFTRunConfig,), run_sft),
            "dpo": ("lesson 07: DPO of lesson 06's SFT model with TRL's DPOTrainer and a LoRA adapter, 3 β × 3 seeds "
                    f"-> data/results/dpo.json{took('dpo')}; --resume keeps the runs an interrupted one finished",
                    (DPORunConfig,), run_dpo),
            "orpo": ("lesson 07: ORPO on the same pairs, beside DPO; its defaults (λ 0.1, seed 0) make "
                     f"data/results/orpo.json{took('orpo')}", (ORPORunConfig,), run_orpo)}
