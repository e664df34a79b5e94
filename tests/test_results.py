"""course_lib.results: every results file is written with its provenance and read back; a missing one names its
command; every committed file's model is the one its recorded command runs, and that command still parses."""

import json
import re
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
        with pytest.raises(FileNotFoundError, match=re.escape(command)):
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


def test_a_broken_results_file_is_one_sentence_naming_it_and_the_fix(tmp_path, monkeypatch):
    from course_lib.results import BrokenInput

    committed = results_path("sft").read_text()
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    results_path("sft").parent.mkdir(parents=True)
    results_path("sft").write_text(committed[:2969])  # cut short, as by a full disk or an editor
    with pytest.raises(BrokenInput) as caught:
        load_results("sft")
    message = str(caught.value)
    assert "sft.json is not a complete results file" in message and "`course sft` rebuilds it" in message
    assert "git checkout -- " in message and "\n" not in message
    assert caught.value._render_traceback_() == [f"BrokenInput: {message}"]  # what a notebook shows: no frames


def test_a_missing_or_cut_adapter_is_one_sentence_naming_it_and_the_fix(tmp_path, monkeypatch):
    import shutil

    from course_lib.results import BrokenInput, require_adapter

    committed = results_path("sft").parent.parent / "adapters" / "sft-docstring"
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    with pytest.raises(BrokenInput, match=r"adapters/sft-docstring does not exist: `course sft` rebuilds it, or "
                                          r"`git checkout -- .*sft-docstring` restores"):
        require_adapter("sft-docstring")
    copy = shutil.copytree(committed, tmp_path / "adapters" / "sft-docstring")
    assert require_adapter("sft-docstring") == copy
    weights = copy / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(BrokenInput, match="adapter_model.safetensors is missing or unreadable: `course sft`"):
        require_adapter("sft-docstring")
    (copy / "adapter_config.json").unlink()
    with pytest.raises(BrokenInput, match="adapter_config.json is missing or unreadable"):
        require_adapter("sft-docstring")


def test_results_files_are_written_whole(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    save_results("lr_sweep", {"model": "course-tiny", "command": "course lr-sweep", "x": 1})
    assert [p.name for p in (tmp_path / "results").iterdir()] == ["lr_sweep.json"]  # no temporary file left


def test_staged_outputs_appear_together_or_not_at_all(tmp_path):
    from course_lib.results import staged_outputs

    folder, file = tmp_path / "adapter", tmp_path / "results" / "run.json"
    folder.mkdir()
    (folder / "weights").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with staged_outputs([folder, file]) as (new_folder, new_file):
            new_folder.mkdir()
            (new_folder / "weights").write_text("new")
            raise KeyboardInterrupt  # before the results file was written
    assert (folder / "weights").read_text() == "old" and not file.exists()
    with staged_outputs([folder, file]) as (new_folder, new_file):
        new_folder.mkdir()
        (new_folder / "weights").write_text("new")
        new_file.write_text("{}")
    assert (folder / "weights").read_text() == "new" and file.read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter", "results"]


LONG_RUNS = {"sft": "sft", "dpo-pairs": "dpo_pairs", "dpo-sweep": "dpo_sweep", "dpo": "dpo",
             "dpo-variants": "dpo_variants", "judge": "judge"}  # lessons 06-07's commands -> their results files


def test_help_times_come_from_the_results_files():
    from course_lib.results import recorded_time
    from course_lib.commands.tuning import COMMANDS

    for command, name in LONG_RUNS.items():
        seconds = load_results(name)["wall_seconds"]
        assert recorded_time(name) in COMMANDS[command][0] and recorded_time(name).split()[0] in (
            f"{seconds:.0f}", f"{seconds / 60:.0f}")


def test_readme_times_come_from_the_results_files():
    """README's `course` table states each long run's time as its results file records it."""
    import re
    from pathlib import Path

    from course_lib.results import recorded_time

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    for command, name in LONG_RUNS.items():
        row = next(line for line in readme.splitlines() if line.startswith(f"| `course {command}`"))
        assert re.search(r"the committed run took ([\d.]+ (?:min|s))", row).group(1) == recorded_time(name), row


@pytest.mark.parametrize("lesson", ["06_instruction_tuning", "07_preference_tuning"])
def test_lessons_check_what_they_read_in_their_first_cell(lesson):
    """Every results file and adapter a lesson reads is checked in its first code cell, before anything slow
    (a missing adapter used to fail lesson 06 after 45 s of live training, with peft's HFValidationError)."""
    import re
    from pathlib import Path

    import jupytext

    nb = jupytext.read(Path(__file__).resolve().parents[1] / "sources" / "lessons" / f"{lesson}.py")
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    read = set(re.findall(r'load_results\("([\w-]+)"\)', "\n".join(code)))
    adapters = set(re.findall(r'"adapters" / "([\w-]+)"', "\n".join(code))) | {"sft-docstring"}
    first = code[0]
    checked = set(re.findall(r'"([\w-]+)"', " ".join(re.findall(r"require_results\(([^)]*)\)", first))))
    assert read and read <= checked, (read, checked)
    for adapter in adapters:
        assert f'"{adapter}"' in first and "require_adapter(" in first, adapter
    from course_lib.experiments.forgetting import ExperimentConfig
    odd = command_line("forgetting", ExperimentConfig(configurations="full; LoRA r=16"))
    assert shlex.split(odd)[-1] == "full; LoRA r=16"  # quoted: the recorded command runs as written
