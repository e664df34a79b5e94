"""course_lib.training.loop.train: history, evaluation callback, step hook, divergence in one sentence."""

from types import SimpleNamespace

import pytest
import torch

from course_lib.training.loop import History, TrainConfig, TrainingDiverged, make_scheduler, train


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


def scripted_eval(values):
    """evaluate(model) returning the next of `values` as the loss, with the model's score weight sum."""
    it = iter(values)

    def evaluate(model):
        return {"loss": next(it), "weight_sum": model.score.weight.sum().item()}
    return evaluate


def test_early_stopping_restores_the_best_evaluation(tiny_classifier, classification_rows):
    # validation loss best at step 4, then worse twice: patience 2 stops at step 8 and restores step 4's weights
    config = cfg(max_steps=20, eval_steps=2, load_best_model_at_end=True, early_stopping_patience=2)
    model = tiny_classifier()
    h = train(model, classification_rows(), config, evaluate=scripted_eval([1.0, 0.5, 0.7, 0.8, 0.1]))
    assert h.eval_step == [2, 4, 6, 8] and h.stopped_step == 8 and h.best_step == 4
    assert h.final() == h.eval[1]
    assert model.score.weight.sum().item() == pytest.approx(h.eval[1]["weight_sum"])  # step 4's weights are back
    assert h.step[-1] == 8  # no step after the stop


def test_greater_is_better_follows_the_metric_name_and_needs_eval_steps():
    assert cfg(eval_steps=2, load_best_model_at_end=True).greater_is_better is False
    assert cfg(eval_steps=2, metric_for_best_model="accuracy").greater_is_better is True
    with pytest.raises(ValueError, match="eval_steps"):
        cfg(early_stopping_patience=2)


def test_early_stopping_maps_onto_the_trainer(tmp_path):
    from transformers import EarlyStoppingCallback

    config = cfg(max_steps=20, eval_steps=5, load_best_model_at_end=True, metric_for_best_model="accuracy",
                 early_stopping_patience=3)
    args = config.to_training_arguments(str(tmp_path))
    assert args.load_best_model_at_end and args.metric_for_best_model == "accuracy" and args.greater_is_better
    assert args.eval_strategy == args.save_strategy == "steps" and args.save_steps == args.eval_steps == 5
    [callback] = config.callbacks()
    assert isinstance(callback, EarlyStoppingCallback) and callback.early_stopping_patience == 3
    assert cfg().callbacks() == []


def _lm_batch(lengths: list[int], vocab: int = 64, seed: int = 0) -> dict:
    """A right-padded causal-LM batch: rows of the given lengths, padding labelled -100."""
    gen = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.randint(1, vocab, (len(lengths), width), generator=gen)
    mask = torch.tensor([[1] * n + [0] * (width - n) for n in lengths])
    return {"input_ids": ids * mask, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}


def _grads(model, micro_batches, normalisation="tokens"):
    from course_lib.training.loop import accumulate_gradients

    model.zero_grad(set_to_none=True)
    accumulate_gradients(model, micro_batches, normalisation)
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def _split(batch: dict, size: int) -> list[dict]:
    return [{k: v[i:i + size] for k, v in batch.items()} for i in range(0, len(batch["input_ids"]), size)]


def test_accumulated_micro_batches_give_the_whole_batch_gradient(tiny_llama):
    model = tiny_llama()
    lengths = [12, 3, 7, 12, 5, 9, 12, 2]  # unequal label tokens per micro-batch
    whole = _lm_batch(lengths)
    full = _grads(model, [whole])
    accumulated = _grads(model, _split(whole, 2))
    assert torch.allclose(accumulated, full, atol=1e-6, rtol=1e-5)
    # averaging each micro-batch's mean loss weighs short micro-batches' tokens too much
    assert (_grads(model, _split(whole, 2), "mean") - full).abs().max() > 1e-3


def test_mean_normalisation_is_exact_when_micro_batches_have_equal_tokens(tiny_llama):
    model = tiny_llama()
    whole = _lm_batch([6] * 8)
    assert torch.allclose(_grads(model, _split(whole, 4), "mean"), _grads(model, [whole]), atol=1e-6)


def test_unknown_normalisation_is_one_clear_error(tiny_llama):
    model = tiny_llama()
    from course_lib.training.loop import accumulate_gradients

    with pytest.raises(ValueError, match="normalisation"):
        accumulate_gradients(model, [_lm_batch([3])], "sum")


def test_live_size_keeps_small_models_and_shortens_large_ones():
    from course_lib.training.sizing import COURSE_TINY_PARAMS, live_size

    assert live_size(30, COURSE_TINY_PARAMS) == live_size(30, 1_000_000) == 30  # course-tiny runs as written
    sizes = [k * COURSE_TINY_PARAMS for k in (2, 10, 100, 1000)]
    steps = [live_size(30, n) for n in sizes]
    assert steps == sorted(steps, reverse=True) and steps[-1] < 30  # a bigger model, never a longer run
    for n, s in zip(sizes, steps):  # a live run on a k-times bigger model costs more, but less than k times
        k = n / COURSE_TINY_PARAMS
        assert 30 < s * k < 30 * k
    assert live_size(5, 10**12, minimum=3) == 3
