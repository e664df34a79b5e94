"""course_lib.tuning.dpo_runs and lesson 07's commands: what they write, how they resume, what they refuse.

A tiny random Llama with SmolLM2's vocabulary stands in for lesson 06's model, and a few shipped on-policy
pairs for the data, so every run takes seconds.
"""

from __future__ import annotations

import dataclasses
import json
import shlex

import pytest

from course_lib import cli
from course_lib.commands import tuning as commands
from course_lib.results import load_results
from course_lib.tuning import dpo, dpo_runs, pairs

SMALL = dict(max_steps=2, per_device_train_batch_size=2, max_new_tokens=3)  # seconds, on the tiny model


@pytest.fixture
def tiny_runs(monkeypatch, small_chat_model, tmp_path):
    """Runs on a tiny model, 4 training pairs and 3 held-out prompts; checkpoints under tmp_path."""
    rows = {s: pairs.on_policy_rows(s)[:4] for s in ("train", "validation", "test")}
    kept = {s: pairs.sample_rows(s)[:3] for s in ("validation", "test")}
    monkeypatch.setattr(dpo_runs, "sft_reference", lambda name=None, adapter=None: small_chat_model())
    monkeypatch.setattr(dpo_runs, "on_policy_rows", lambda split, n=None: rows[split])
    monkeypatch.setattr(dpo_runs, "sample_rows", lambda split: kept[split])
    monkeypatch.setattr(commands, "data_dir", lambda: tmp_path)
    return tmp_path


@pytest.mark.slow
def test_each_command_writes_a_file_its_recorded_command_reproduces(tiny_runs):
    for name, run, config in (("dpo-sweep", commands.run_dpo_sweep,
                               dpo_runs.SweepConfig(arms=["dpo@1e-4", "dpo@1e-2", "dpo+sft@1e-2"], **SMALL)),
                              ("dpo", commands.run_dpo, dpo_runs.SeedsConfig(arms=["dpo@1e-3"], seeds=[0, 1], **SMALL)),
                              ("dpo-variants", commands.run_dpo_variants, dpo_runs.VariantsConfig(**SMALL))):
        out = tiny_runs / f"{name}.json"
        assert run(dataclasses.replace(config, out=str(out))) == 0
        result = json.loads(out.read_text())
        # its --out too: rerun without it, a second file of the same command would overwrite the first
        assert cli.parse(shlex.split(result["command"])[1:]) == (name, (dataclasses.replace(config, out=str(out)),))
        after = result["runs"][0]["after"]
        assert len(after["answers"]) == 3 and len(after["outcomes"]) == 3 and 0 <= after["win_rate"]["win_rate"] <= 1
        assert result["runs"][0]["curve"]["step"] == [1, 2] and "logps/chosen" in result["runs"][0]["curve"]
    sweep, seeds, variants = (json.loads((tiny_runs / f"{n}.json").read_text()) for n in ("dpo-sweep", "dpo", "dpo-variants"))
    assert sweep["split"] == "validation" and sweep["best_learning_rate"]["dpo"] in (1e-4, 1e-2)
    assert sweep["best_learning_rate"]["dpo+sft"] == 1e-2
    assert [r["seed"] for r in seeds["runs"]] == [0, 1] and seeds["win_rate"]["dpo@0.001"]["seeds"] == 2
    assert [r["loss"] for r in variants["runs"]] == ["ipo", "orpo"] and set(variants["win_rate"]) == {"ipo@0.001", "orpo@0.001"}


@pytest.mark.slow
def test_resume_extends_a_finished_sweep_with_the_missing_arms_only(tiny_runs, monkeypatch):
    out = tiny_runs / "dpo-sweep.json"
    assert commands.run_dpo_sweep(dpo_runs.SweepConfig(arms=["dpo@1e-3"], out=str(out), **SMALL)) == 0
    first = json.loads(out.read_text())["runs"][0]
    trained = []
    train = dpo_runs.train_arm
    monkeypatch.setattr(dpo_runs, "train_arm", lambda config, *a, **k: trained.append(config.loss) or train(config, *a, **k))
    config = dpo_runs.SweepConfig(arms=["dpo@1e-3", "ipo@1e-3"], out=str(out), resume=True, **SMALL)
    assert commands.run_dpo_sweep(config) == 0
    result = json.loads(out.read_text())
    assert trained == ["ipo"] and result["runs"][0] == first and [r["loss"] for r in result["runs"]] == ["dpo", "ipo"]
    assert "--resume" not in result["command"]
    with pytest.raises(ValueError, match="other options"):  # a checkpoint from other options is not mixed in
        (tiny_runs / "checkpoints" / "dpo-sweep").mkdir(parents=True)
        (tiny_runs / "checkpoints" / "dpo-sweep" / "runs.json").write_text(json.dumps({"options": {}, "runs": []}))
        commands.run_dpo_sweep(config)


@pytest.mark.slow
def test_an_interrupted_dpo_keeps_its_runs_and_resumes(tiny_runs, monkeypatch):
    out = tiny_runs / "dpo.json"
    config = lambda **kw: dpo_runs.SeedsConfig(arms=["dpo@1e-3"], seeds=[0, 1], out=str(out), **SMALL, **kw)  # noqa: E731
    out.write_text("the committed file\n")
    train, calls = dpo_runs.train_arm, []

    def second_run_interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return train(*args, **kwargs)
    with monkeypatch.context() as m:
        m.setattr(dpo_runs, "train_arm", second_run_interrupted)
        with pytest.raises(KeyboardInterrupt, match="1 of 2 runs are kept"):
            commands.run_dpo(config())
    assert out.read_text() == "the committed file\n"
    with pytest.raises(ValueError, match="other options"):
        commands.run_dpo(config(lora_alpha=4.0, resume=True))
    first = json.loads((tiny_runs / "checkpoints" / "dpo" / "runs.json").read_text())["runs"][0]
    with monkeypatch.context() as m:  # fewer seeds than were asked: the kept run alone, nothing trained
        m.setattr(dpo_runs, "train_arm", lambda *a, **k: pytest.fail("a kept run was trained again"))
        assert commands.run_dpo(dataclasses.replace(config(resume=True), seeds=[0])) == 0
    assert json.loads(out.read_text())["runs"] == [first]
    (tiny_runs / "checkpoints" / "dpo").mkdir(parents=True)
    (tiny_runs / "checkpoints" / "dpo" / "runs.json").write_text(json.dumps({"options": commands._options(config()) | {
        "seeds": [0]}, "runs": [first]}))  # as an interrupted run with other seeds leaves it
    assert commands.run_dpo(config(resume=True)) == 0
    result = json.loads(out.read_text())
    assert [r["seed"] for r in result["runs"]] == [0, 1] and result["runs"][0] == first
    assert not (tiny_runs / "checkpoints" / "dpo").exists()


def test_the_sweep_picks_the_best_validation_win_rate_and_the_smaller_lr_on_a_tie():
    runs = [{"loss": loss, "learning_rate": lr, "after": {"win_rate": {"win_rate": w}}}
            for loss, lr, w in (("dpo", 1e-3, 0.6), ("dpo", 1e-4, 0.6), ("dpo", 5e-3, 0.5), ("ipo", 1e-3, 0.4),
                                ("ipo", 5e-3, 0.7))]
    assert dpo_runs.best_learning_rate(runs) == {"dpo": 1e-4, "ipo": 5e-3}


def test_the_sweep_passes_over_a_learning_rate_that_changed_no_answer():
    """All ties (0.5) beat every real change's win rate, but a run that changed nothing did not train."""
    runs = [{"loss": "dpo", "learning_rate": lr, "after": {"win_rate": {"win_rate": w}, "changed": c}}
            for lr, w, c in ((1e-6, 0.5, 0), (1e-4, 0.375, 6), (1e-3, 0.45, 24))]
    assert dpo_runs.best_learning_rate(runs) == {"dpo": 1e-3}
    assert dpo_runs.best_learning_rate(runs[:1]) == {"dpo": 1e-6}  # nothing else tried: say so, do not hide it


@pytest.mark.parametrize("args, says", [(["dpo", "--beta", "0"], "must be positive"),
                                        (["dpo", "--arms", "kto@0.001"], "--arms must name"),
                                        (["dpo-sweep", "--arms", "dpo@0"], "--arms must name"),
                                        (["dpo-variants", "--arms", "ipo"], "an arm is LOSS@LEARNING_RATE"),
                                        (["dpo", "--seeds", "-1"], "--seeds must name"),
                                        (["dpo-pairs", "--samples", "1"], "--samples must be at least 2")])
def test_nonsense_options_are_refused_before_anything_loads(args, says, capsys):
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1, err


def test_the_sweep_brackets_each_pick_and_course_dpo_runs_at_a_swept_shared_learning_rate():
    """Each objective's pick has a swept learning rate on both sides (a pick at the edge justifies nothing);
    `course dpo` and the variants share one learning rate, which the sweep tried for both objectives."""
    sweep, main, variants = load_results("dpo_sweep"), load_results("dpo"), load_results("dpo_variants")
    assert sweep["best_learning_rate"] == dpo_runs.best_learning_rate(sweep["runs"])
    for loss, picked in sweep["best_learning_rate"].items():
        tried = sorted(r["learning_rate"] for r in sweep["runs"] if r["loss"] == loss)
        assert tried[0] < picked < tried[-1], (loss, picked, tried)
    shared = {r["learning_rate"] for r in main["runs"] + variants["runs"]}
    assert len(shared) == 1 and all(shared <= {r["learning_rate"] for r in sweep["runs"] if r["loss"] == loss}
                                    for loss in ("dpo", "dpo+sft"))
    assert main["config"]["arms"] == dpo_runs.SeedsConfig().arms and variants["config"]["arms"] == dpo_runs.VariantsConfig().arms
    for key in ("beta", "max_steps", "per_device_train_batch_size", "r", "lora_alpha"):
        assert sweep["config"][key] == main["config"][key] == variants["config"][key], key


def test_the_runs_train_on_the_shipped_pairs():
    result = load_results("dpo")
    assert result["train_pairs"] == len(pairs.on_policy_rows("train"))
    assert result["runs"][0]["trainable_parameters"] > 0 and result["config"]["r"] == dpo.DPORunConfig().r
