"""The `course` command: one entry point for everything the course builds or checks.

    course doctor              what this machine has (versions, device, 4-bit support, paths)
    course build-data          rebuild data/ from the Python standard library
    course pretrain            rebuild data/models/course-tiny (tokenizer + weights + card)

Each subcommand lives next to the concept it belongs to; this file only parses arguments.
Mistakes a user can make end in one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from typing import Callable

__all__ = ["main"]

# name -> (help, add_arguments, run); other modules contribute theirs as a COMMANDS dict.
_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def _add_dataclass_args(parser: argparse.ArgumentParser, cls) -> None:
    for f in fields(cls):
        if f.type in ("int", "float", "str", int, float, str):
            typ = {"int": int, "float": float, "str": str}.get(f.type, f.type)
            parser.add_argument(f"--{f.name.replace('_', '-')}", type=typ, default=None, dest=f.name)


def _from_args(cls, args: argparse.Namespace):
    given = {f.name: getattr(args, f.name) for f in fields(cls) if getattr(args, f.name, None) is not None}
    return cls(**given)


def _doctor_args(p):
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")


def _doctor_run(args) -> int:
    from course_lib.doctor import doctor, format_report
    import json
    report = doctor()
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    return 0


def _build_data_args(p):
    from course_lib.data import DataConfig
    _add_dataclass_args(p, DataConfig)


def _build_data_run(args) -> int:
    from course_lib.data import DataConfig, build_all
    counts = build_all(_from_args(DataConfig, args))
    for name, splits in counts.items():
        print(f"{name:15s} " + ", ".join(f"{s} {n}" for s, n in splits.items()))
    return 0


def _pretrain_args(p):
    from course_lib.pretrain import PretrainConfig
    _add_dataclass_args(p, PretrainConfig)
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")


def _pretrain_run(args) -> int:
    from course_lib.pretrain import PretrainConfig, pretrain
    pretrain(_from_args(PretrainConfig, args), resume=not args.no_resume)
    return 0


_COMMANDS.update({
    "doctor": ("show Python and package versions, device, GPU memory, 4-bit support, data paths",
               _doctor_args, _doctor_run),
    "build-data": ("rebuild the datasets and data cards under data/ from Python's own text",
                   _build_data_args, _build_data_run),
    "pretrain": ("pretrain course-tiny (tokenizer, weights, model card) from data/corpus",
                 _pretrain_args, _pretrain_run),
})


# Modules that contribute subcommands through a module-level COMMANDS dict.
_PLUGINS = ("course_lib.vram", "course_lib.transfer", "course_lib.lr_finder", "course_lib.forgetting",
            "course_lib.lora", "course_lib.grading.cli")


def _load_plugins() -> None:
    """Subcommands defined by other course_lib modules (each optional, added by its lesson)."""
    import importlib
    for module in _PLUGINS:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        for name, spec in getattr(mod, "COMMANDS", {}).items():
            _COMMANDS[name] = spec


def main(argv: list[str] | None = None) -> int:
    _load_plugins()
    parser = argparse.ArgumentParser(prog="course", description="The fine-tuning course's command line.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_, add_arguments, _) in _COMMANDS.items():
        add_arguments(sub.add_parser(name, help=help_, description=help_))
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        return _COMMANDS[args.command][2](args) or 0
    except (ValueError, FileNotFoundError) as exc:  # a user's mistake: one line, no traceback
        print(f"course {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"course {args.command}: interrupted (anything written so far is kept).", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
