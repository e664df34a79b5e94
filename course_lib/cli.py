"""The `course` command: one entry point for everything the course builds or checks.

    course doctor              what this machine has (versions, device, 4-bit support, paths)
    course COMMAND --help      every option of a command, with its true default

Every subcommand is declared where its concept lives, as a module-level
`COMMANDS = {name: (help, (ConfigClass, ...), run)}`: the options are the fields of typed
dataclasses (help text in each field's metadata, as peft does), parsed by transformers'
`HfArgumentParser` (a first config class may name one field `POSITIONAL: ClassVar[str]`), and `run(*configs) -> int` receives the filled-in dataclasses. This file only
dispatches. Mistakes a user can make end in one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import importlib
import json
import sys
from dataclasses import dataclass, field
from typing import Callable

import torch

from course_lib.doctor import doctor, format_report
from course_lib.models.base import set_threads
from course_lib.notebook import quiet_process
from course_lib.throughput import TokenMeter, command_threads

__all__ = ["main", "commands", "parse", "DoctorArgs", "RunArgs"]

# Modules that declare `COMMANDS`; each is imported only when `course` runs.
COMMAND_MODULES = ("course_lib.cli", "course_lib.commands.data", "course_lib.commands.models",
                   "course_lib.commands.vram", "course_lib.commands.training", "course_lib.experiments.learning_curve",
                   "course_lib.experiments.lr_sweep", "course_lib.experiments.lora_ablation",
                   "course_lib.experiments.forgetting", "course_lib.experiments.memory", "course_lib.commands.tuning",
                   "course_lib.experiments.harness_runs", "course_lib.experiments.leakage",
                   "course_lib.experiments.grpo", "course_lib.experiments.compare_methods",
                   "course_lib.grading.cli")

Spec = tuple[str, tuple[type, ...], Callable[..., int]]


@dataclass
class DoctorArgs:
    """Options of `course doctor`."""

    json: bool = field(default=False, metadata={"help": "print machine-readable JSON"})


@dataclass
class RunArgs:
    """Options every `course` command takes (added by `main`, not passed to the command's `run`)."""

    threads: int | None = field(default=None, metadata={
        "help": "CPU threads for this command (default: $COURSE_THREADS if set, else every core this process may use; "
                "the lessons use 1 so their numbers repeat on any laptop)"})


def _doctor(args: DoctorArgs) -> int:
    report = doctor()
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    return 0


COMMANDS: dict[str, Spec] = {
    "doctor": ("show Python and package versions, device, GPU memory, 4-bit support, data paths, and "
               "whether the installed versions are the locked ones", (DoctorArgs,), _doctor),
}


class _UsageError(Exception):
    """An option the parser could not read (unknown choice, not a number, ...)."""


def _parser(config_types: tuple[type, ...], name: str, description: str):
    """transformers' HfArgumentParser, with parse errors raised instead of printed with the usage."""
    from transformers import HfArgumentParser

    class Parser(HfArgumentParser):
        def error(self, message):
            raise _UsageError(message)

    return Parser(config_types, prog=f"course {name}", description=description)


def commands() -> dict[str, Spec]:
    """Every subcommand, by name, in the order of COMMAND_MODULES."""
    found: dict[str, Spec] = {}
    for module in COMMAND_MODULES:
        found.update(importlib.import_module(module).COMMANDS)
    return found


def _command(name: str) -> Spec | None:
    """The subcommand `name`, importing COMMAND_MODULES only up to the one that declares it (None if none does).

    A command starts faster this way: `course train-distributed`, which lesson 08 launches in several processes,
    does not import the modules of the commands after it (trl, nbformat, ...)."""
    for module in COMMAND_MODULES:
        spec = importlib.import_module(module).COMMANDS.get(name)
        if spec is not None:
            return spec
    return None


def _usage(specs: dict[str, Spec]) -> str:
    width = max(map(len, specs))
    lines = ["usage: course COMMAND [options]     (course COMMAND --help lists a command's options)", "",
             "The fine-tuning course's command line.", "", "commands:"]
    lines += [f"  {name:{width}s}  {help_}" for name, (help_, _, _) in specs.items()]
    return "\n".join(lines)


def _parse(argv: list[str]) -> tuple[str, list, RunArgs | None]:
    """(NAME, its filled-in config dataclasses, the options every command takes or None where it has its own)."""
    name, rest = argv[0], list(argv[1:])
    spec = _command(name)
    if spec is None:
        raise ValueError(f"unknown command {name!r}; `course --help` lists them.")
    help_, config_types, _ = spec
    positional = getattr(config_types[0], "POSITIONAL", None)  # `course grade FOLDER` = `--submissions FOLDER`
    if positional and rest and not rest[0].startswith("-"):
        rest = [f"--{positional}", *rest]
    # A command with its own thread option (pretrain: 1 thread, bit for bit) does not take --threads.
    own_threads = any("threads" in f for t in config_types for f in getattr(t, "__dataclass_fields__", {}))
    types = config_types if own_threads else (*config_types, RunArgs)
    try:
        configs = list(_parser(types, name, help_).parse_args_into_dataclasses(rest))  # --help exits here
    except _UsageError as exc:
        raise ValueError(f"{exc} (`course {name} --help` lists the options)") from None
    return name, configs, (None if own_threads else configs.pop())


def parse(argv: list[str]) -> tuple[str, tuple]:
    """`course NAME [options]` (argv without `course`) -> (NAME, its filled-in config dataclasses).

    Raises ValueError for an unknown command or option; what `main` runs, and what tests use to check
    that a results file's recorded command still parses.
    """
    name, configs, _ = _parse(argv)
    return name, tuple(configs)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    quiet_process()  # no known notices or DeepSpeed accelerator warning; imports nothing (`course grade` stays small)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage(commands()))
        return 0 if argv else 2
    name = argv[0]
    spec = _command(name)
    if spec is None:
        print(f"course: error: unknown command {name!r}; `course --help` lists them.", file=sys.stderr)
        return 2
    previous = torch.get_num_threads()  # restored at the end: `main` is also called in-process (tests)
    try:
        _, configs, run_args = _parse(argv)
        if run_args is not None:
            set_threads(command_threads(run_args.threads))
        with TokenMeter() as meter:
            code = spec[2](*configs) or 0
        if meter.train_tokens:
            print(f"course {name}: {meter.summary()}", file=sys.stderr)
        return code
    except (ValueError, FileNotFoundError) as exc:  # a user's mistake (an option too): one line, no traceback
        print(f"course {name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # a command may say what it left behind (course sft: nothing changed)
        print(f"course {name}: interrupted{': ' + str(exc) if str(exc) else ''}.", file=sys.stderr)
        return 130
    finally:
        torch.set_num_threads(previous)


if __name__ == "__main__":
    sys.exit(main())
