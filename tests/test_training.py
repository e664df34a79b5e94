"""course_lib.training.train: history, evaluation callback, step hook, divergence in one sentence."""

from types import SimpleNamespace

import pytest
import torch
from transformers import LlamaConfig, LlamaForSequenceClassification

from course_lib.training import History, TrainConfig, TrainingDiverged, make_scheduler, train


def tiny_classifier():
    torch.manual_seed(0)
    return LlamaForSequenceClassification(LlamaConfig(
        vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=32, pad_token_id=0, num_labels=3))


def rows(n=32):
    g = torch.Generator().manual_seed(0)
    return [{"input_ids": torch.randint(1, 64, (8,), generator=g), "attention_mask": torch.ones(8, dtype=torch.long),
             "labels": torch.tensor(i % 3)} for i in range(n)]


def cfg(**kw):
    return TrainConfig(**{"max_steps": 6, "per_device_train_batch_size": 8, "learning_rate": 1e-2,
                          "disable_tqdm": True, **kw})


def test_history_and_eval_callback():
    calls = []

    def evaluate(model):
        assert not model.training and not torch.is_grad_enabled()  # eval mode, no autograd
        calls.append(1)
        return {"accuracy": 0.5}

    h = train(tiny_classifier(), rows(), cfg(logging_steps=2, eval_steps=2), evaluate=evaluate)
    assert isinstance(h, History)
    assert h.step == [2, 4, 6] and len(h.loss) == 3 and len(h.learning_rate) == 3
    assert h.eval_step == [2, 4, 6] and h.eval_metric("accuracy") == [0.5] * 3 and len(calls) == 3


def test_same_seed_same_run():
    a = train(tiny_classifier(), rows(), cfg())
    b = train(tiny_classifier(), rows(), cfg())
    assert a.loss == b.loss


def test_on_step_begin_sees_every_step():
    seen = []
    train(tiny_classifier(), rows(), cfg(), on_step_begin=lambda step, model: seen.append(step))
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


def test_too_high_learning_rate_explodes_with_the_step():
    with pytest.raises(TrainingDiverged, match=r"at step \d+ with learning rate 1\.00e\+02"):
        train(tiny_classifier(), rows(), cfg(learning_rate=100.0, max_steps=30, max_grad_norm=0.0))


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
