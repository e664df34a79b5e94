"""course_lib.training.transfer and its experiments: subsets, per-method configs, summaries, one real run."""

import math

import pytest
import torch
from course_lib.training import transfer
from course_lib.metrics import classification_evaluator
from course_lib.models.base import course_tiny_path
from course_lib.results import load_results
from course_lib.training.transfer import METHODS, TransferConfig, curve_summary, subset


def test_subsets_are_nested_and_seeded():
    rows = [{"i": i} for i in range(100)]
    small, large = subset(rows, 10, seed=1), subset(rows, 40, seed=1)
    assert small == large[:10]
    assert subset(rows, 10, seed=1) == small and subset(rows, 10, seed=2) != small


def test_config_learning_rate_per_method():
    c = TransferConfig(lr_probe=0.5)
    assert c.learning_rate("linear_probe") == 0.5
    tc = c.train_config("full", seed=3)
    assert tc.learning_rate == c.lr_full and tc.seed == 3 and tc.max_steps == c.max_steps
    assert set(METHODS) == {"scratch", "linear_probe", "top_blocks", "full"}


def test_evaluator_matches_manual_loss_and_accuracy(tiny_classifier, classification_rows):
    model = tiny_classifier(layers=1)
    rows = classification_rows(10)
    collate = lambda b: {k: torch.stack([r[k] for r in b]) for k in b[0]}  # noqa: E731 (equal lengths)
    got = classification_evaluator(rows, collate, batch_size=4)(model)
    batch = collate(rows)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert math.isclose(got["loss"], torch.nn.functional.cross_entropy(logits, batch["labels"]).item(), rel_tol=1e-5)
    assert got["accuracy"] == (logits.argmax(-1) == batch["labels"]).sum().item() / 10


def test_curve_summary_mean_and_std():
    res = {"runs": [{"method": "full", "size": 10, "seed": s, "accuracy": a} for s, a in enumerate([0.5, 0.7, 0.6])]}
    mean, std = curve_summary(res)["full"][10]
    assert math.isclose(mean, 0.6) and math.isclose(std, 0.1)


def test_committed_results_are_well_formed():
    for name, key in (("learning_curve", "runs"), ("lr_sweep", "learning_rates")):
        try:
            res = load_results(name)
        except FileNotFoundError:
            pytest.skip(f"{name}.json not built yet")
        assert res[key] and "config" in res and "command" in res


@pytest.mark.skipif(not (course_tiny_path() / "model.safetensors").exists(), reason="course-tiny not built")
def test_linear_probe_trains_only_the_head_on_course_tiny():
    from course_lib.data.datasets import load_course_dataset
    ds = load_course_dataset("classification")
    config = TransferConfig(max_steps=3, model="")
    run = transfer.fine_tune_classifier("linear_probe", list(ds["train"])[:32], list(ds["validation"])[:32],
                                        config, seed=0)
    assert run.trainable == 128 * 6 and run.total > 1_000_000
    assert 0.0 <= run.accuracy <= 1.0 and len(run.history.step) == 3


def test_scaled_for_shrinks_runs_and_learning_rates_with_the_model_size():
    from course_lib.training.sizing import COURSE_TINY_PARAMS
    from course_lib.training.transfer import TransferConfig

    base = TransferConfig(eval_steps=5)
    assert base.scaled_for(COURSE_TINY_PARAMS) == base  # course-tiny keeps its settings
    big = base.scaled_for(100 * COURSE_TINY_PARAMS)
    assert (big.max_length, big.per_device_train_batch_size, big.max_steps) == (32, 8, 16)  # the floors
    assert big.eval_steps == 4 and big.eval_rows == 128  # at most 4 evaluations, of 128 rows
    assert big.lr_full == pytest.approx(base.lr_full / 10) and big.lr_probe == base.lr_probe  # 1/sqrt(100)
    mid = base.scaled_for(2 * COURSE_TINY_PARAMS)
    assert mid.max_length == 32 and mid.per_device_train_batch_size == 16 and mid.max_steps == 80
