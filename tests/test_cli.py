"""The `course` command: every subcommand registered, `--help` shows the dataclasses' true defaults, errors are one line."""

import dataclasses
import json
import subprocess
import sys

import pytest

from course_lib.cli import _parser, commands, main

EXPECTED = {"doctor", "build-data", "pretrain", "get-model", "vram", "learning-curve", "lr-sweep", "lora-ablation",
            "forgetting", "release", "grade", "check", "train-distributed", "memory", "sft", "dpo-pairs", "dpo-sweep",
            "dpo", "dpo-variants", "judge", "evaluate", "leak", "grpo", "compare-methods"}


def test_every_subcommand_is_listed(capsys):
    assert main([]) == 2
    listing = capsys.readouterr().out
    assert set(commands()) == EXPECTED
    for name in EXPECTED:
        assert f"  {name} " in listing, f"`course {name}` is not listed"


def test_each_command_is_declared_once_and_found_alone():
    # `main` imports the command modules only up to the one that declares the name: a second declaration
    # further down the list would never run
    from collections import Counter
    from importlib import import_module

    from course_lib.cli import COMMAND_MODULES, _command

    declared = Counter(n for m in COMMAND_MODULES for n in import_module(m).COMMANDS)
    assert [n for n, k in declared.items() if k > 1] == []
    assert all(_command(name) == commands()[name] for name in EXPECTED) and _command("no-such-command") is None


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_help_shows_every_field_with_its_true_default(name, capsys):
    help_, config_types, _ = commands()[name]
    actions = {}
    for a in _parser(config_types, name, help_)._actions:
        actions.setdefault(a.dest, a)  # argparse takes a shared dest's default from its first option
    for cls in config_types:
        for f in dataclasses.fields(cls):
            assert f.name in actions, f"{cls.__name__}.{f.name} has no option"
            if f.default is not dataclasses.MISSING:
                assert actions[f.name].default == f.default, f.name
            elif f.default_factory is not dataclasses.MISSING:
                assert actions[f.name].default == f.default_factory(), f.name
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help text"
    with pytest.raises(SystemExit) as exit_:
        main([name, "--help"])
    assert exit_.value.code == 0 and "(default:" in capsys.readouterr().out


def test_sweep_defaults_differ_from_the_transfer_defaults_and_help_says_so():
    from course_lib.experiments.lr_sweep import SweepTransferConfig
    from course_lib.training.transfer import TransferConfig
    assert (SweepTransferConfig().max_steps, TransferConfig().max_steps) == (60, 80)
    help_, types, _ = commands()["lr-sweep"]
    assert next(a for a in _parser(types, "lr-sweep", help_)._actions if a.dest == "max_steps").default == 60


def test_bool_options_are_parsed_not_skipped(capsys):
    assert main(["doctor", "--json"]) == 0
    assert "packages" in json.loads(capsys.readouterr().out)
    help_, types, _ = commands()["pretrain"]
    (config, args) = _parser(types, "pretrain", help_).parse_args_into_dataclasses(["--no-resume", "--max-steps", "5"])
    assert args.resume is False and config.max_steps == 5


def test_lists_are_space_separated_everywhere():
    for name, field in (("learning-curve", "seeds"), ("lr-sweep", "seeds"), ("forgetting", "seeds")):
        help_, types, _ = commands()[name]
        configs = _parser(types, name, help_).parse_args_into_dataclasses(["--seeds", "4", "5"])
        assert [getattr(c, field) for c in configs if hasattr(c, field)] == [[4, 5]], name


@pytest.mark.parametrize("args", [["vram", "--method", "prefix"], ["vram", "--batch-size", "four"], ["nonsense"],
                                  ["vram", "--no-such-option"]])
def test_user_errors_are_one_line_and_exit_2(args, capsys):
    try:
        code = main(args)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


def test_a_user_error_is_one_line_from_the_real_command():
    """The same through a new process, as a learner types it (one case: each process imports torch)."""
    proc = subprocess.run([sys.executable, "-m", "course_lib.cli", "vram", "--batch-size", "0"], capture_output=True,
                          text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_grade_takes_its_folder_first(tmp_path, capsys):
    assert main(["grade", str(tmp_path / "missing"), "--out", str(tmp_path / "g.csv")]) == 2
    assert "missing" in capsys.readouterr().err


def test_commands_use_every_core_unless_told(monkeypatch):
    import torch

    from course_lib.throughput import command_threads, cpu_cores, lesson_threads
    monkeypatch.delenv("COURSE_THREADS", raising=False)
    assert (command_threads(), lesson_threads()) == (cpu_cores(), 1)
    monkeypatch.setenv("COURSE_THREADS", "3")
    assert (command_threads(), lesson_threads()) == (3, 3)  # the variable beats both defaults
    assert command_threads(1) == 1  # the option beats the variable
    with pytest.raises(ValueError, match="at least 1"):
        command_threads(-2)
    before = torch.get_num_threads()
    assert main(["doctor", "--threads", "2"]) == 0
    assert torch.get_num_threads() == before  # `main` called in-process leaves the caller's setting alone


def test_threads_is_an_option_of_every_training_command_but_pretrains_own(capsys):
    for name in ("sft", "dpo-pairs", "dpo-sweep", "dpo", "dpo-variants", "judge", "lr-sweep", "learning-curve", "lora-ablation", "forgetting"):
        with pytest.raises(SystemExit):
            main([name, "--help"])
        assert "--threads" in capsys.readouterr().out, name
    with pytest.raises(SystemExit):
        main(["pretrain", "--help"])
    out = capsys.readouterr().out
    assert "--num_threads" in out and "--threads THREADS" not in out
