"""course_lib.training.lr_finder: the sweep restores weights, drops NaNs, stops early, suggests sane LRs."""

import math
from types import SimpleNamespace

import pytest
import torch

from course_lib.training.lr_finder import LRFinderConfig, SuggestedLRs, _valley, exponential_lrs, lr_find, suggest


FAST = LRFinderConfig(num_steps=40, start_lr=1e-5, end_lr=100.0, smoothing=0.9, per_device_train_batch_size=8,
                      disable_tqdm=True)


def test_exponential_lrs():
    lrs = exponential_lrs(1e-7, 10.0, 100)
    assert len(lrs) == 100 and math.isclose(lrs[0], 1e-7) and math.isclose(lrs[-1], 10.0)
    ratios = [b / a for a, b in zip(lrs, lrs[1:])]
    assert max(ratios) - min(ratios) < 1e-9
    with pytest.raises(ValueError):
        exponential_lrs(1.0, 0.1, 10)


def test_weights_and_mode_restored_exactly(tiny_classifier, classification_rows):
    model = tiny_classifier().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = lr_find(model, classification_rows(), FAST)
    assert isinstance(result, SuggestedLRs)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model.training
    assert all(p.grad is None for p in model.parameters())


def test_early_stop_when_loss_blows_up(tiny_classifier, classification_rows):
    result = lr_find(tiny_classifier(), classification_rows(), FAST)
    assert len(result.lrs) < FAST.num_steps  # LRs above ~1 wreck a tiny model before the sweep ends
    assert result.losses[-1] > FAST.stop_factor * min(result.losses)


def test_suggestions_in_range_and_ordered(tiny_classifier, classification_rows):
    result = lr_find(tiny_classifier(), classification_rows(), FAST)
    lrs, losses = result.lrs, result.losses
    assert result.valley in lrs and result.steep in lrs and result.minimum * 10 in lrs
    assert losses[lrs.index(result.valley)] < losses[0], "the valley lies below where the sweep started"
    i_steep = lrs.index(result.steep)
    assert losses[i_steep + 1] < losses[i_steep], "the loss falls right after the steep point"
    assert losses[lrs.index(result.minimum * 10)] == min(losses[len(lrs) // 10:len(lrs) - 5])
    assert "valley=" in str(result)


class NaNAfter(torch.nn.Module):
    """A 'model' whose loss is finite for `k` calls, then NaN."""

    def __init__(self, k):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(5.0))
        self.k, self.calls = k, 0

    def forward(self, **batch):
        self.calls += 1
        loss = (self.w - 1) ** 2 if self.calls <= self.k else self.w * float("nan")
        return SimpleNamespace(loss=loss)


def test_nan_losses_dropped():
    model = NaNAfter(k=25)
    data = [{"input_ids": torch.zeros(2, dtype=torch.long), "labels": torch.tensor(0)} for _ in range(8)]
    result = lr_find(model, data, LRFinderConfig(num_steps=60, start_lr=1e-4, end_lr=1e-1, disable_tqdm=True,
                                                  stop_factor=1e9))
    assert len(result.losses) == 25 and all(math.isfinite(v) for v in result.losses)
    assert model.w.item() == 5.0  # restored


def test_suggest_on_a_known_curve():
    lrs = exponential_lrs(1e-6, 1.0, 61)
    x = [math.log10(lr) for lr in lrs]
    losses = [2.0 - math.tanh(2 * (v + 3)) + (0.5 * (v + 0.5) ** 2 if v > -0.5 else 0) for v in x]
    s = suggest(lrs, losses)
    assert math.isclose(math.log10(s.steep), -3, abs_tol=0.15)  # tanh falls fastest at its centre
    i_min = min(range(len(losses) - 5), key=losses.__getitem__)
    assert math.isclose(s.minimum, lrs[i_min] / 10)
    assert 1e-4 < s.valley < lrs[i_min]
    with pytest.raises(ValueError, match="finite losses"):
        suggest(lrs[:3], [1.0, float("nan"), 1.0])


def test_valley_index():
    # fastai's formula: about halfway along the longest descending stretch (here indices 0..9)
    assert _valley([10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 2, 3]) == 3
    assert _valley([1, 2, 9, 8, 7, 6, 5, 4, 3, 9]) == 4
