"""course_lib.training.train: history, evaluation callback, step hook, divergence in one sentence."""

from types import SimpleNamespace

import pytest
import torch

from course_lib.training import History, TrainConfig, TrainingDiverged, make_scheduler, train


def cfg(**kw):
    return TrainConfig(**{"max_steps": 6, "per_device_train_batch_size": 8, "learning_rate": 1e-2,
                          "disable_tqdm": True, **kw})


def test_history_and_eval_callback(tiny_classifier, classification_rows):
    calls = []

    def evaluate(model):
        assert not model.training and not torch.is_grad_enabled()  # eval mode, no autograd
        calls.append(1)
        return {"accuracy": 0.5}

    h = train(tiny_classifier(), classification_rows(), cfg(logging_steps=2, eval_steps=2), evaluate=evaluate)
    assert isinstance(h, History)
    assert h.step == [2, 4, 6] and len(h.loss) == 3 and len(h.learning_rate) == 3
    assert h.eval_step == [2, 4, 6] and h.eval_metric("accuracy") == [0.5] * 3 and len(calls) == 3


def test_same_seed_same_run(tiny_classifier, classification_rows):
    a = train(tiny_classifier(), classification_rows(), cfg())
    b = train(tiny_classifier(), classification_rows(), cfg())
    assert a.loss == b.loss


def test_on_step_begin_sees_every_step(tiny_classifier, classification_rows):
    seen = []
    train(tiny_classifier(), classification_rows(), cfg(), on_step_begin=lambda step, model: seen.append(step))
    assert seen == [1, 2, 3, 4, 5, 6]


class NaNAt(torch.nn.Module):
    def __init__(self, step):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(1.0))
        self.step, self.calls = step, 0

    def forward(self, **batch):
        self.calls += 1
        return SimpleNamespace(loss=(self.w ** 2) * (float("nan") if self.calls == self.step else 1.0))


def test_nan_raises_one_sentence_with_the_step_and_keeps_history():
    data = [{"x": torch.zeros(1), "labels": torch.tensor(0)} for _ in range(8)]
    with pytest.raises(TrainingDiverged) as info:
        train(NaNAt(step=4), data, cfg(max_steps=10))
    msg = str(info.value)
    assert "became NaN at step 4" in msg and "Lower the learning rate" in msg and "\n" not in msg
    assert info.value.history.step == [1, 2, 3]


def test_too_high_learning_rate_explodes_with_the_step(tiny_classifier, classification_rows):
    with pytest.raises(TrainingDiverged, match=r"at step \d+ with learning rate 1\.00e\+02"):
        train(tiny_classifier(), classification_rows(), cfg(learning_rate=100.0, max_steps=30, max_grad_norm=0.0))


def test_scheduler_warmup_then_cosine():
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = make_scheduler(opt, TrainConfig(max_steps=20, warmup_ratio=0.1, lr_scheduler_type="cosine",
                                            learning_rate=1.0))
    lrs = []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == 0.0 and lrs[2] == pytest.approx(1.0) and lrs[-1] < 0.01


def test_to_training_arguments_carries_every_shared_name(tmp_path):
    tc = TrainConfig(learning_rate=3e-4, max_steps=7, per_device_train_batch_size=4, lr_scheduler_type="cosine",
                     warmup_ratio=0.25, weight_decay=0.01, adam_beta1=0.8, adam_beta2=0.95, max_grad_norm=0.5,
                     eval_steps=5, logging_steps=3, seed=11, disable_tqdm=True)
    args = tc.to_training_arguments(str(tmp_path), report_to="none")
    for name in ("learning_rate", "max_steps", "per_device_train_batch_size", "weight_decay", "adam_beta1",
                 "adam_beta2", "max_grad_norm", "eval_steps", "logging_steps", "seed", "disable_tqdm"):
        assert getattr(args, name) == getattr(tc, name), name
    assert args.lr_scheduler_type == "cosine" and args.get_warmup_steps(tc.max_steps) == 2  # 0.25 × 7, rounded
    assert args.eval_strategy == "steps" and args.save_strategy == "no"
    assert tc.to_training_arguments(str(tmp_path), seed=3).seed == 3  # overrides win


def test_live_size_keeps_small_models_and_shortens_large_ones():
    from course_lib.training import live_size

    assert live_size(30, 1_000_000) == 30
    assert live_size(30, 140_000_000) == 9  # 100x the parameters: (1/100)^(1/4) ≈ 0.32 of the steps
    assert live_size(5, 10**12, minimum=3) == 3
