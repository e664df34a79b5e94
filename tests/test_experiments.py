"""course_lib.experiments: the runners' results files have the schema the lessons read."""

import math

import pytest

from course_lib.data.datasets import instruction_text
from course_lib.experiments.forgetting import (LEARNING_RATES, SCALED_RUNS, ExperimentConfig, RunSpec, _prepare,
                                              default_runs, learning_rates, run_experiment, scaled_config)
from course_lib.forgetting.measuring import TaskData, summarize
from course_lib.training.sizing import COURSE_TINY_PARAMS


def test_top_method_trains_only_the_top_block(text_tokenizer, text_llama):
    model = _prepare(text_llama(), RunSpec("top", method="top", top_layers=1))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("model.layers.1.", "model.norm.")) for n in trainable)


def test_default_runs_b_steps_follow_the_a_steps():
    runs = {r.name: r for r in default_runs(25)}
    assert runs["A then B"].task_b_steps == 25 and runs["full"].task_b_steps == 0
    assert len(runs) == 10


def test_runner_writes_results_with_schema(text_tokenizer, text_llama, texts):
    qa = [instruction_text({"instruction": f"Explain item {i}.", "input": "", "output": t})
          for i, t in enumerate(texts)]
    data = TaskData(target_train=qa[:16], target_val=qa[16:20], general=texts[20:],
                    replay=texts[:8], task_b_train=texts[8:16], task_b_val=texts[16:18])
    runs = [RunSpec("full"), RunSpec("lora", method="lora", lora_r=2), RunSpec("top", method="top"),
            RunSpec("replay", replay_fraction=0.5), RunSpec("ewc", ewc_lambda=10.0),
            RunSpec("seq", task_b_steps=2)]
    config = ExperimentConfig(seeds=[0, 1, 2], max_steps=2, per_device_train_batch_size=4, max_length=32,
                              eval_steps=1, curve_texts=2, fisher_samples=4, answer_prompts=2)
    results = run_experiment(text_llama(), text_tokenizer, data, config, runs=runs, log=None)
    assert set(results) == {"meta", "base", "runs"}
    assert [r["name"] for r in results["meta"]["config"]["runs"]] == [r.name for r in runs]
    assert {"general_ppl", "general_acc", "target_ppl", "curve"} <= set(results["base"])
    assert len(results["runs"]) == len(runs) * 3
    for run in results["runs"]:
        assert {"name", "seed", "gain", "forgetting", "acc_drop", "general_ppl", "target_ppl", "curve",
                "trainable_params", "train_loss"} <= set(run)
        assert run["curve"]["step"] == [1, 2]
        assert math.isclose(run["forgetting"], math.log(run["general_ppl"] / results["base"]["general_ppl"]),
                            rel_tol=1e-9, abs_tol=1e-12)
    seq = [r for r in results["runs"] if r["name"] == "seq"]
    assert all("drop_on_a" in r and "after_b" in r and len(r["answers_after_b"]) == 2 for r in seq)
    summary = summarize(results)
    assert summary["full"]["seeds"] == 3 and len(summary["full"]["gain"]) == 2
    lora = [r for r in results["runs"] if r["name"] == "lora"][0]
    full = [r for r in results["runs"] if r["name"] == "full"][0]
    assert lora["trainable_params"] < full["trainable_params"]


def test_learning_curve_records_the_command():
    from course_lib.experiments.learning_curve import LearningCurveArgs
    from course_lib.results import command_line
    from course_lib.training.transfer import TransferConfig

    config, args = TransferConfig(model="smollm2-135m-instruct"), LearningCurveArgs(sizes=[25, 100], seeds=[0])
    assert command_line("learning-curve", config, args) \
        == "course learning-curve --model smollm2-135m-instruct --sizes 25 100 --seeds 0"


def test_scaled_config_leaves_course_tiny_alone_and_shrinks_a_bigger_model():
    config = ExperimentConfig()
    assert scaled_config(config, COURSE_TINY_PARAMS) == config
    small = scaled_config(config, 100 * COURSE_TINY_PARAMS)  # 100x the parameters, the same compute
    assert (small.max_length, small.per_device_train_batch_size, small.max_steps) == (64, 8, 4)  # the floors
    assert small.eval_texts == small.curve_texts == 16 and small.eval_steps == 2
    more = scaled_config(config, 100 * COURSE_TINY_PARAMS, compute=5.0)
    assert small.max_steps < more.max_steps <= config.max_steps
    tokens = lambda c: c.max_steps * c.per_device_train_batch_size * c.max_length  # noqa: E731
    assert tokens(more) * 100 / 5 == pytest.approx(tokens(config), rel=0.25)  # ~5x course-tiny's compute


def test_learning_rates_by_name_else_the_nearest_size():
    assert learning_rates("course-tiny", 1) == LEARNING_RATES["course-tiny"]
    assert learning_rates("some/other-model", 120_000_000) == LEARNING_RATES["smollm2-135m-instruct"]
    assert learning_rates("a-folder", 2_000_000) == LEARNING_RATES["course-tiny"]
    runs = {r.name: r for r in default_runs(rates=LEARNING_RATES["smollm2-135m-instruct"])}
    assert runs["full"].learning_rate == 5e-5 and runs["full, lr/10"].learning_rate == pytest.approx(5e-6)
    assert runs["LoRA r=16"].learning_rate == 5e-4 and set(SCALED_RUNS) <= set(runs)
    assert {r.name: r.learning_rate for r in default_runs()}["full"] == 1e-3  # course-tiny's, as before


def test_runner_with_the_retention_probe(text_tokenizer, text_llama, texts):
    data = TaskData(target_train=texts[:16], target_val=texts[16:20], general=texts[20:], replay=texts[:8])
    config = ExperimentConfig(seeds=[0], max_steps=2, per_device_train_batch_size=4, max_length=32, eval_steps=2,
                              curve_texts=2, eval_texts=2, probe_prompts=3, probe_tokens=4)
    results = run_experiment(text_llama(), text_tokenizer, data, config, runs=[RunSpec("full", learning_rate=1e-2)],
                             log=None)
    assert len(results["base"]["probe"]["questions"]) == 3 and len(results["base"]["probe"]["answers"]) == 3
    run = results["runs"][0]
    assert 0.0 <= run["kept"] <= 1.0 and isinstance(run["logprob_change"], float) and len(run["probe_answers"]) == 3
    assert {"kept", "logprob_change"} <= set(summarize(results)["full"])


def test_learning_curve_model_option_parses_and_buys_back_steps_with_compute():
    from course_lib.cli import parse
    from course_lib.results import RESULTS, command_line

    words = "learning-curve --model smollm2-135m-instruct --sizes 25 100 --seeds 0 --compute 12".split()
    _, (config, args) = parse(words)
    assert config.model == "smollm2-135m-instruct" and args.sizes == [25, 100] and args.compute == 12
    assert command_line("learning-curve", config, args) == RESULTS["learning_curve_smollm2-135m-instruct"]
    one, more = config.scaled_for(100 * COURSE_TINY_PARAMS), config.scaled_for(100 * COURSE_TINY_PARAMS, 12)
    assert (one.max_steps, more.max_steps) == (16, 38)  # 80×16×64 tokens × 12 / 100 = 38 steps of 8×32
    assert more.lr_full == one.lr_full and more.max_length == one.max_length == 32
