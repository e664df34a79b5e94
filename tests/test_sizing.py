"""course_lib.training.sizing: one rule shrinks every run for a bigger model, and it reproduces the settings the
committed real-model results were made with (so none of them needs a re-run)."""

import json

import pytest

from course_lib.experiments.forgetting import ExperimentConfig, scaled_config
from course_lib.memory.vram import PRESETS
from course_lib.results import load_results
from course_lib.training.sizing import COURSE_TINY_PARAMS, shrink_run
from course_lib.training.transfer import TransferConfig


def test_course_tiny_size_is_the_presets_and_the_shipped_models():
    from course_lib.models.base import count_parameters, course_tiny_path

    assert COURSE_TINY_PARAMS == PRESETS["course-tiny"].parameters
    config = json.loads((course_tiny_path() / "config.json").read_text())
    assert (config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]) == (128, 4, 4096)
    if (course_tiny_path() / "model.safetensors").exists():
        from course_lib.models.loading import load_base_model
        assert count_parameters(load_base_model()) == COURSE_TINY_PARAMS


@pytest.mark.parametrize("k", [1.5, 3, 10, 100, 1000])
@pytest.mark.parametrize("compute", [1.0, 2.5, 12.0])
def test_tokens_shrink_by_the_factor_until_a_floor_binds(k, compute):
    length, batch, steps, factor = shrink_run(128, 16, 40, round(k * COURSE_TINY_PARAMS), compute, floors=(8, 2, 2))
    assert factor == pytest.approx(k / compute, rel=1e-6)
    assert length <= 128 and batch <= 16 and steps <= 40  # never more than asked
    if factor > 1 and (length, batch, steps) != (8, 2, 2):
        assert length * batch * steps == pytest.approx(128 * 16 * 40 / factor, rel=0.35)  # rounding only


def test_rows_shrink_first_then_batches_then_steps():
    sizes = [shrink_run(128, 16, 40, round(k * COURSE_TINY_PARAMS), floors=(64, 8, 4)) for k in (1.5, 3, 6, 100)]
    assert sizes[0][:3] == (85, 16, 40)  # rows alone absorb a factor of 1.5
    assert sizes[1][:3] == (64, 11, 39)  # then the batch (10.7 rounds to 11: one step fewer makes up for it)
    assert sizes[2][:3] == (64, 8, 27)  # then, with the batch at its floor, the steps
    assert sizes[3][:3] == (64, 8, 4)  # every floor reached
    smaller = [s[0] * s[1] * s[2] for s in sizes]
    assert smaller == sorted(smaller, reverse=True)


def test_a_model_no_bigger_than_course_tiny_keeps_its_settings():
    assert shrink_run(64, 16, 80, COURSE_TINY_PARAMS)[:3] == (64, 16, 80)
    assert TransferConfig().scaled_for(COURSE_TINY_PARAMS) == TransferConfig()
    assert scaled_config(ExperimentConfig(), COURSE_TINY_PARAMS) == ExperimentConfig()


def test_the_rule_reproduces_the_committed_learning_curve_of_smollm2():
    record = load_results("learning_curve_smollm2-135m-instruct")  # --compute 12: made before the rule was one
    ran = TransferConfig().scaled_for(record["parameters"], record["compute"])
    stored = record["config"]
    assert (ran.max_length, ran.per_device_train_batch_size, ran.max_steps, ran.eval_rows) == \
        (stored["max_length"], stored["per_device_train_batch_size"], stored["max_steps"], stored["eval_rows"])
    assert (ran.lr_full, ran.lr_scratch, ran.lr_top_blocks) == \
        (stored["lr_full"], stored["lr_scratch"], stored["lr_top_blocks"])


def test_the_rule_reproduces_the_committed_forgetting_run_of_smollm2():
    record = load_results("forgetting_smollm2-135m-instruct")
    meta = record["meta"]
    stored = {k: v for k, v in meta["config"].items() if k != "runs"}
    asked = ExperimentConfig(model="smollm2-135m-instruct", probe_prompts=16, curve_texts=0)  # its command
    ran = scaled_config(asked, meta["parameters"], meta["scaled_from"]["compute"])
    for key in ("max_length", "per_device_train_batch_size", "max_steps", "eval_steps", "eval_texts",
                "fisher_samples", "curve_texts"):
        assert getattr(ran, key) == stored[key], key
