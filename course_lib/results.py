"""Results files: what the long `course` experiments write and the lessons read (data/results/*.json).

    save_results("lr_sweep", payload)   # by a runner in course_lib/experiments/
    load_results("lr_sweep")            # by a lesson; a missing or broken file names the command that makes it

Every file records the model the run used, the versions line and the command that produced it: the
one naming rule (`results_name`) and the one command-line capture (`command_line`) live here, and
`save_results` refuses a payload that does not say its model and command. A file is written whole or not
at all (a temporary file, then a rename); `staged_outputs` does the same for the several outputs of one
run (lesson 06's adapters and sft.json): all of them are replaced together at the end, so an interrupted
run leaves the previous ones as they were.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import tempfile
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Iterator, Sequence

from course_lib.data.datasets import data_dir
from course_lib.doctor import versions_line
from course_lib.models.base import COURSE_TINY
from course_lib.throughput import active_meter

__all__ = ["RESULTS", "results_name", "results_path", "command_line", "save_results", "load_results",
           "staged_outputs", "BrokenInput", "require_results", "require_adapter", "recorded_time", "took"]

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
    "dpo_pairs": "course dpo-pairs",  # lesson 07: on-policy pairs (and data/preferences-on-policy)
    "dpo_sweep": "course dpo-sweep",  # lesson 07
    "dpo": "course dpo",  # lesson 07
    "dpo_own_lr": "course dpo --arms dpo+sft@0.0003 dpo@0.0003 --out data/results/dpo_own_lr.json",  # lesson 07: the sweep's pick
    "ipo_tau": "course dpo-variants --arms ipo@0.001 --beta 1.5 --out data/results/ipo_tau.json",  # lesson 07: IPO's target in reach
    "dpo_variants": "course dpo-variants",  # lesson 07
    "judge": "course judge",  # lesson 07
    "evaluation": "course evaluate",  # lesson 10: the harness on three models, zero- and few-shot
    "leakage": "course leak",  # lesson 10: a fine-tune with test items leaked into its training rows
    "grpo": "course grpo",  # lesson 09
    "compare_methods": "course compare-methods",  # lesson 11
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
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.",
                                     delete=False) as tmp:  # whole or not at all: a rename at the end
        tmp.write(json.dumps(payload, indent=1) + "\n")
    os.replace(tmp.name, path)
    return path


@contextmanager
def staged_outputs(targets: Sequence[Path | str]) -> Iterator[list[Path]]:
    """Paths to write a run's outputs to instead of `targets`; they replace the targets together at the end.

        with staged_outputs([adapter_dir, results_file]) as (adapter_tmp, results_tmp):
            ...write to adapter_tmp and results_tmp...
        # here both are in place; after an exception (Ctrl-C included) neither target has changed

    The staging folder sits beside the first target (same disk, so the moves are renames); a target left
    unwritten in staging is left alone. Ctrl-C during the final moves is held until they are done.
    """
    targets = [Path(t) for t in targets]
    targets[0].parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=targets[0].parent, prefix=".staging-"))
    staged = [staging / "new" / str(i) / t.name for i, t in enumerate(targets)]
    for path in staged:
        path.parent.mkdir(parents=True)
    try:
        yield staged
        interrupted: list = []
        previous = signal.signal(signal.SIGINT, lambda *a: interrupted.append(a)) \
            if signal.getsignal(signal.SIGINT) is not None and _main_thread() else None
        try:
            for i, (new, target) in enumerate(zip(staged, targets)):
                if not new.exists():
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.exists():
                    shutil.move(target, staging / f"old-{i}")
                shutil.move(new, target)
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        if interrupted:
            raise KeyboardInterrupt("interrupted after every output was written")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def recorded_time(name: str) -> str:
    """How long the run behind data/results/<name>.json took ("51 min", its `wall_seconds`), for help texts;
    "" when the file is missing or has no time. Read when `course` lists its commands: help never guesses."""
    try:
        seconds = float(json.loads(results_path(name).read_text(encoding="utf-8"))["wall_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def took(name: str) -> str:
    """" (the committed run took 51 min, data/results/dpo.json)", or "" without a time."""
    time = recorded_time(name)
    return f" (the run that wrote data/results/{name}.json took {time})" if time else ""


class BrokenInput(FileNotFoundError):
    """A file a lesson needs is missing or unreadable; the message names it and the command that rebuilds it."""

    def _render_traceback_(self) -> list[str]:  # in a notebook: the sentence, not a traceback
        return [f"{type(self).__name__}: {self}"]


def _shown(path: Path) -> str:
    root = data_dir().parent
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


def _restore(path: Path, command: str) -> str:
    return f"`{command}` rebuilds it, or `git checkout -- {_shown(path)}` restores the course's copy"


def load_results(name: str) -> dict:
    """A results file written by a `course` command; a missing or broken file says which command makes it."""
    path = results_path(name)
    command = RESULTS.get(name, "course")
    if not path.exists():
        raise BrokenInput(f"{_shown(path)} does not exist: run `{command}` to produce it.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BrokenInput(f"{_shown(path)} is not a complete results file ({exc.msg if hasattr(exc, 'msg') else exc}, "
                          f"perhaps cut short): {_restore(path, command)}.") from None


def require_results(*names: str) -> None:
    """Stop at once, with one sentence, if a results file a lesson reads is missing or broken."""
    for name in names:
        load_results(name)


ADAPTERS = {"sft-docstring": "course sft", "sft-docstring-whole-text": "course sft"}  # folder -> its command


def _json_readable(path: Path) -> bool:
    try:
        json.loads(path.read_text(encoding="utf-8"))
        return True
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False


def _safetensors_readable(path: Path) -> bool:
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            return bool(list(f.keys()))
    except Exception:  # noqa: BLE001 - safetensors raises its own error types for a cut file
        return False


def require_adapter(name: str) -> Path:
    """data/adapters/<name>, checked whole (config and weights readable), or one sentence naming the fix."""
    path = data_dir() / "adapters" / name
    command = ADAPTERS.get(name, "course sft")
    config, weights = path / "adapter_config.json", path / "adapter_model.safetensors"
    if not path.is_dir():
        raise BrokenInput(f"{_shown(path)} does not exist: {_restore(path, command)}.")
    for part, readable in ((config, _json_readable), (weights, _safetensors_readable)):
        if not readable(part):
            raise BrokenInput(f"{_shown(part)} is missing or unreadable: {_restore(path, command)}.")
    return path
