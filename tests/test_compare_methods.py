"""course_lib.experiments.compare_methods: the summary's interval, the resumable command, one real tiny run."""

from __future__ import annotations

import json
import math

import pytest

from course_lib.experiments import compare_methods as cm
from course_lib.tuning import methods


def test_summary_is_mean_and_95_percent_half_width_over_the_chosen_seeds():
    runs = [{"method": "lora", "chosen": True, "test": {"response_ppl": x}} for x in (10.0, 12.0, 14.0)]
    runs.append({"method": "lora", "test": {"response_ppl": 99.0}})  # a sweep run at the other rate: left out
    s = cm.summary(runs)["lora"]
    assert s["mean"] == 12.0 and s["n"] == 3
    assert s["ci95"] == pytest.approx(1.96 * 2.0 / math.sqrt(3))


def test_validate_names_the_unknown_method():
    with pytest.raises(ValueError, match="dylora"):
        cm.CompareConfig(methods=["lora", "dylora"]).validate()


def test_command_keeps_runs_and_refuses_a_resume_with_other_options(tmp_path, monkeypatch):
    monkeypatch.setattr(cm, "checkpoints_dir", lambda out="": tmp_path / "ck")

    def fake(config, finished=None, on_run=None, done_baselines=None, on_baselines=None):
        on_baselines({"zero_shot": {}})
        on_run({"method": "lora", "learning_rate": 1e-3, "seed": 0})
        raise KeyboardInterrupt
    monkeypatch.setattr(cm, "compare_methods", fake)
    config = cm.CompareConfig(methods=["lora"], out=str(tmp_path / "out.json"))
    with pytest.raises(KeyboardInterrupt, match="1 runs are kept"):
        cm._run(config)
    kept = json.loads((tmp_path / "ck" / "runs.json").read_text())
    assert kept["runs"][0]["method"] == "lora" and kept["baselines"] == {"zero_shot": {}}
    with pytest.raises(ValueError, match="other options"):
        cm._run(cm.CompareConfig(methods=["ia3"], out=str(tmp_path / "out.json"), resume=True))

    seen = {}

    def finish(config, finished=None, on_run=None, done_baselines=None, on_baselines=None):
        seen.update(finished=finished, baselines=done_baselines)
        return {"model": "smollm2-135m-instruct", "runs": finished, "baselines": done_baselines}
    monkeypatch.setattr(cm, "compare_methods", finish)
    assert cm._run(cm.CompareConfig(methods=["lora"], out=str(tmp_path / "out.json"), resume=True)) == 0
    assert seen["finished"][0]["seed"] == 0 and seen["baselines"] == {"zero_shot": {}}  # nothing rerun
    written = json.loads((tmp_path / "out.json").read_text())
    assert written["command"] == "course compare-methods --methods lora --resume True" and written["wall_seconds"] >= 0
    assert not (tmp_path / "ck").exists()


def test_one_method_end_to_end_on_a_tiny_model(monkeypatch, small_chat_model, chat_tok):
    monkeypatch.setattr(methods, "load_base_model", lambda name=None, **kw: small_chat_model())
    monkeypatch.setattr(cm, "load_base_model", lambda name=None, **kw: small_chat_model())
    monkeypatch.setattr(cm, "load_tokenizer", lambda name: chat_tok)
    monkeypatch.setattr(cm, "build_method", lambda name, model, spec, seed=0: methods.build_method(
        name, model, spec, seed=seed, tokenizer_path=chat_tok.name_or_path))
    config = cm.CompareConfig(methods=["ia3"], train_rows=2, eval_rows=2, test_rows=2, generate_rows=1,
                              max_steps=2, per_device_train_batch_size=1, max_new_tokens=3, retention_prompts=1,
                              few_shot_k=1)
    kept = []
    out = cm.compare_methods(config, on_run=kept.append)
    chosen = [r for r in out["runs"] if r.get("chosen")]
    assert [r["seed"] for r in chosen] == [0, 1, 2]
    assert {r["learning_rate"] for r in out["runs"]} == set(cm.LR_GRID["ia3"])
    first = chosen[0]
    assert first["trainable_parameters"] == first["peft_trainable_parameters"] > 0
    assert first["adapter_bytes"] > 0 and first["tensor_peak_bytes"] > 0 and "vram_estimate_bytes" not in first
    assert "rouge_l" in first["test"] and "rouge_l" not in chosen[1]["test"]  # answers at the first seed only
    assert set(out["baselines"]) == {"zero_shot", "few_shot", "retrieval_few_shot"}
    assert out["baselines"]["few_shot"]["extra_prompt_tokens"] > 0
    assert len(kept) == 2 + 3  # the sweep's two runs, then the three seeds at the chosen rate (seed 0 again)
