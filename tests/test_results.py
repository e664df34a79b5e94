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
