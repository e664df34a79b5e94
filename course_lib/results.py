"""Results files: what the long `course` experiments write and the lessons read (data/results/*.json).

    save_results("lr_sweep", payload)   # by a runner in course_lib/experiments/
    load_results("lr_sweep")            # by a lesson; a missing file names the command that makes it

Every file records the model the run used, the versions line and the command that produced it: the
one naming rule (`results_name`) and the one command-line capture (`command_line`) live here, and
`save_results` refuses a payload that does not say its model and command.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import fields
from pathlib import Path

from course_lib.data.datasets import data_dir
from course_lib.doctor import versions_line
from course_lib.models.base import COURSE_TINY
from course_lib.throughput import active_meter

__all__ = ["RESULTS", "results_name", "results_path", "command_line", "save_results", "load_results"]

# results file name -> the command that writes it (and the lesson that reads it)
RESULTS = {
    "learning_curve": "course learning-curve",  # lesson 01
    "learning_curve_smollm2-135m-instruct":  # lesson 01, the real model
        "course learning-curve --model smollm2-135m-instruct --sizes 25 100 --seeds 0 --compute 12.0",
    "lr_sweep": "course lr-sweep",  # lesson 02
    "lora_rank_ablation": "course lora-ablation",  # lesson 03
    "lora_rank_ablation_smollm2-135m-instruct":  # lesson 03, the real model
        "course lora-ablation --model smollm2-135m-instruct --ranks 1 8 64 --scalings alpha_2r --budget False "
        "--learning_rate 0.0005 --max_steps 40 --eval_examples 100 --seeds 0",
    "forgetting": "course forgetting",  # lesson 05
    "forgetting_smollm2-135m-instruct":  # lesson 05, the real model
        "course forgetting --model smollm2-135m-instruct --probe_prompts 16 --curve_texts 0",
    "memory_smollm2": "course memory --model smollm2-135m-instruct",  # lesson 04
    "sft": "course sft",  # lesson 06
    "dpo": "course dpo",  # lesson 07
    "orpo": "course orpo --betas 0.1 --seeds 0",  # lesson 07
}


def results_name(base: str, model: str) -> str:
    """`base` for course-tiny, `base_<model>` for any other model (a folder or a hub id: its last part)."""
    return base if model == COURSE_TINY else f"{base}_{Path(model.rstrip('/')).name}"


def results_path(name: str) -> Path:
    """data/results/<name>.json"""
    return data_dir() / "results" / f"{name}.json"


def command_line(command: str, *configs) -> str:
    """The `course` command that reproduces `configs`: the options that differ from their defaults."""
    words = ["course", command]
    for config in configs:
        default = type(config)()
        for f in fields(config):
            value = getattr(config, f.name)
            if f.name != "out" and value != getattr(default, f.name):
                words += [f"--{f.name}", *(map(str, value) if isinstance(value, list) else [str(value)])]
    return " ".join(map(shlex.quote, words))


def save_results(name: str, payload: dict, out: Path | str | None = None) -> Path:
    """Write `payload` with its model, the versions and its command on top, to `out` or data/results/<name>.json.

    The payload names the model the run used and its command (`command_line`): nothing is assumed. Under a
    `course` command it also records the threads, the machine's cores and the tokens trained so far with
    their end-to-end rate (`machine`: course_lib.throughput).
    """
    missing = [key for key in ("model", "command") if not payload.get(key)]
    if missing:
        raise ValueError(f"results {name!r}: the payload must name its {' and '.join(missing)} "
                         "(the model the run used; command_line(...) for the command).")
    path = Path(out) if out else results_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"model": payload["model"], "versions": versions_line(), "command": payload["command"], **payload}
    if (meter := active_meter()) is not None:
        payload["machine"] = meter.reading()
    path.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    return path


def load_results(name: str) -> dict:
    """A results file written by a `course` command; a missing file says which command makes it."""
    path = results_path(name)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run `{RESULTS.get(name, 'course')}` to produce it.")
    return json.loads(path.read_text(encoding="utf-8"))
