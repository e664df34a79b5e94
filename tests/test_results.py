"""course_lib.results: every results file is written with its provenance and read back; a missing one names its command."""

import json

import pytest

from course_lib.results import RESULTS, load_results, results_path, save_results


def test_missing_results_name_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    for name, command in RESULTS.items():
        with pytest.raises(FileNotFoundError, match=command):
            load_results(name)


def test_save_adds_provenance_and_round_trips(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    path = save_results("lr_sweep", {"x": 1})
    assert path == results_path("lr_sweep") == tmp_path / "results" / "lr_sweep.json"
    saved = json.loads(path.read_text())
    assert saved["x"] == 1 and saved["command"] == "course lr-sweep" and saved["versions"].startswith("Python ")
    assert load_results("lr_sweep") == saved
    other = save_results("forgetting", {"y": 2}, out=tmp_path / "elsewhere.json")
    assert other == tmp_path / "elsewhere.json" and not results_path("forgetting").exists()


def test_every_committed_results_file_is_registered():
    committed = {p.stem for p in results_path("x").parent.glob("*.json")}
    assert committed and committed <= set(RESULTS), committed - set(RESULTS)


def test_command_line_names_only_the_options_that_differ():
    from course_lib.experiments.lora_ablation import AblationConfig
    from course_lib.results import command_line

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
    save_results("lr_sweep", {"x": 1})
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


def test_help_times_come_from_the_results_files():
    from course_lib.results import recorded_time
    from course_lib.sft import COMMANDS as SFT
    from course_lib.dpo import COMMANDS as DPO

    for name, commands in (("sft", SFT), ("dpo", DPO), ("orpo", DPO)):
        seconds = load_results(name)["wall_seconds"]
        assert recorded_time(name) in commands[name][0] and recorded_time(name).split()[0] in (
            f"{seconds:.0f}", f"{seconds / 60:.0f}")


def test_readme_times_come_from_the_results_files():
    """README's `course` table states each long run's time as its results file records it."""
    import re
    from pathlib import Path

    from course_lib.results import recorded_time

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    for name in ("sft", "dpo", "orpo"):
        row = next(line for line in readme.splitlines() if line.startswith(f"| `course {name}"))
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
