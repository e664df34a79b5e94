"""course_lib.results: every results file is written with its provenance and read back; a missing one names its
command; every committed file's model is the one its recorded command runs, and that command still parses."""

import json
import shlex

import pytest

from course_lib import cli
from course_lib.models.base import COURSE_TINY, model_name
from course_lib.results import RESULTS, command_line, load_results, results_name, results_path, save_results
from course_lib.tuning.sft import DEFAULT_MODEL

COMMITTED = sorted(results_path("x").parent.glob("*.json"))


def test_missing_results_name_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    for name, command in RESULTS.items():
        with pytest.raises(FileNotFoundError, match=command):
            load_results(name)


def test_save_adds_provenance_and_round_trips(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    path = save_results("lr_sweep", {"model": "m", "command": "course lr-sweep --model m", "x": 1})
    assert path == results_path("lr_sweep") == tmp_path / "results" / "lr_sweep.json"
    saved = json.loads(path.read_text())
    assert list(saved)[:3] == ["model", "versions", "command"] and saved["versions"].startswith("Python ")
    assert (saved["model"], saved["command"], saved["x"]) == ("m", "course lr-sweep --model m", 1)
    assert load_results("lr_sweep") == saved
    other = save_results("forgetting", {"model": "m", "command": "course forgetting", "y": 2},
                         out=tmp_path / "elsewhere.json")
    assert other == tmp_path / "elsewhere.json" and not results_path("forgetting").exists()


@pytest.mark.parametrize("payload", [{"x": 1}, {"model": "m", "x": 1}, {"command": "course sft", "x": 1}])
def test_save_refuses_a_payload_that_does_not_name_its_model_and_command(payload, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    with pytest.raises(ValueError, match="must name its"):
        save_results("sft", payload)
    assert not results_path("sft").exists()


def test_every_committed_results_file_is_registered():
    committed = {p.stem for p in COMMITTED}
    assert committed and committed <= set(RESULTS), committed - set(RESULTS)


def _model_of(command: str) -> str:
    """The model a recorded `course ...` command runs, with COURSE_MODEL unset; raises if it no longer parses."""
    words = shlex.split(command)
    assert words[0] == "course", command
    _, configs = cli.parse(words[1:])  # raises if an option was renamed or removed since
    given = [c.model for c in configs if hasattr(c, "model")]
    default = COURSE_TINY if given else DEFAULT_MODEL  # sft, dpo and orpo have no --model: lessons 06-07's model
    return model_name(given[0] if given else None, default=default)


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_a_results_file_records_the_model_its_command_runs(path, monkeypatch):
    monkeypatch.delenv("COURSE_MODEL", raising=False)  # the command alone must say which model ran
    record = json.loads(path.read_text(encoding="utf-8"))
    meta = record.get("meta", {})  # forgetting.json, written before the stamp on top, keeps both in meta
    command, model = record.get("command") or meta.get("command"), record.get("model") or meta.get("model")
    assert command and model, f"{path.name} does not record its command and its model"
    assert model == _model_of(command), f"{path.name}: model {model!r}, but `{command}` runs {_model_of(command)!r}"


def test_the_check_catches_a_file_whose_model_is_not_its_commands(monkeypatch):
    monkeypatch.delenv("COURSE_MODEL", raising=False)
    # memory_smollm2.json as it was committed: the stamp said course-tiny, the command smollm2
    assert _model_of("course memory --model smollm2-135m-instruct") == "smollm2-135m-instruct" != "course-tiny"
    assert _model_of("course forgetting") == "course-tiny" and _model_of("course dpo") == DEFAULT_MODEL
    with pytest.raises(ValueError, match="not_an_option"):
        _model_of("course memory --not_an_option 1")


def test_results_are_named_by_model():
    assert results_name("learning_curve", "course-tiny") == "learning_curve"
    assert results_name("learning_curve", "smollm2-135m-instruct") == "learning_curve_smollm2-135m-instruct"
    assert results_name("forgetting", "/some/folder/my-model/") == "forgetting_my-model"


def test_command_line_names_only_the_options_that_differ():
    from course_lib.experiments.lora_ablation import AblationConfig

    assert command_line("lora-ablation", AblationConfig()) == "course lora-ablation"
    config = AblationConfig(ranks=[1, 8], max_steps=5, out="x.json")  # `out` is where, not what: left out
    assert command_line("lora-ablation", config) == "course lora-ablation --ranks 1 8 --max_steps 5"
    from course_lib.experiments.forgetting import ExperimentConfig
    odd = command_line("forgetting", ExperimentConfig(configurations="full; LoRA r=16"))
    assert shlex.split(odd)[-1] == "full; LoRA r=16"  # quoted: the recorded command runs as written
