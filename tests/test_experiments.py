"""course_lib.experiments: the runners' results files have the schema the lessons read."""

import math

from course_lib.data import instruction_text
from course_lib.experiments.forgetting import ExperimentConfig, RunSpec, _prepare, default_runs, run_experiment
from course_lib.forgetting import TaskData, summarize


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


def test_learning_curve_files_are_named_by_model_and_record_the_command():
    from course_lib.experiments.learning_curve import LearningCurveArgs, _command, results_name
    from course_lib.transfer import TransferConfig

    assert results_name("course-tiny") == "learning_curve"
    assert results_name("smollm2-135m-instruct") == "learning_curve_smollm2-135m-instruct"
    assert results_name("/some/folder/my-model/") == "learning_curve_my-model"
    assert _command(TransferConfig(model="smollm2-135m-instruct"), LearningCurveArgs(sizes=[25, 100], seeds=[0])) \
        == "course learning-curve --model smollm2-135m-instruct --sizes 25 100 --seeds 0"
