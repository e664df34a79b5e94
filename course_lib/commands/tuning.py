"""`course sft`, `course dpo`, `course orpo` (lessons 06, 07): run, write the results file and the adapter card."""

from __future__ import annotations

from pathlib import Path

from course_lib.data.datasets import data_dir
from course_lib.results import command_line, save_results
from course_lib.tuning.dpo import DPORunConfig, dpo_run, orpo_run
from course_lib.tuning.sft import SFTRunConfig, sft_run, write_adapter_card

__all__ = ["run_sft", "run_dpo", "run_orpo", "COMMANDS"]


def run_sft(config: SFTRunConfig) -> int:
    if config.max_steps <= 0 or config.train_rows <= 0:
        raise ValueError("--max_steps and --train_rows must be positive.")
    result = sft_run(config)
    adapter_dir = Path(config.adapter_dir or data_dir() / "adapters" / "sft-docstring")
    write_adapter_card(adapter_dir, result)
    if config.compare_whole_text:
        write_adapter_card(adapter_dir.with_name(adapter_dir.name + "-whole-text"), result, "whole-text loss, "
                           "the comparison run")
    path = save_results("sft", {"command": command_line("sft", config), **result}, out=config.out or None)
    print(f"wrote {path}")
    return 0


def run_dpo(config: DPORunConfig) -> int:
    if config.max_steps <= 0 or not config.betas or not config.seeds:
        raise ValueError("--max_steps must be positive, and --betas and --seeds must name at least one value.")
    path = save_results("dpo", {"command": command_line("dpo", config), **dpo_run(config)}, out=config.out or None)
    print(f"wrote {path}")
    return 0


def run_orpo(config: DPORunConfig) -> int:
    print(f"wrote {save_results('orpo', {'command': command_line('orpo', config), **orpo_run(config)}, out=config.out or None)}")
    return 0


COMMANDS = {"sft": ("lesson 06: LoRA instruction tuning of smollm2-135m-instruct with TRL's SFTTrainer -> "
                    "data/results/sft.json and data/adapters/sft-docstring (about 18 min on a shared 2-core CPU)",
                    (SFTRunConfig,), run_sft),
            "dpo": ("lesson 07: DPO of lesson 06's SFT model with TRL's DPOTrainer and a LoRA adapter, 3 β × 3 seeds "
                    "-> data/results/dpo.json (about 25 min on a shared 2-core CPU)", (DPORunConfig,), run_dpo),
            "orpo": ("lesson 07: ORPO on the same pairs, beside DPO (its first --betas value is ORPO's λ) -> "
                     "data/results/orpo.json", (DPORunConfig,), run_orpo)}

