"""course_lib.training.freezing on a tiny Llama classifier (3 blocks, width 16): fast, no files needed."""

import pytest
import torch

from course_lib.training.freezing import (discriminative_lr_groups, freeze_all_but, gradual_unfreezing, layer_groups,
                                 set_trainable_groups, trainable_report, unfreeze_top_blocks)
from course_lib.models.base import count_parameters
from course_lib.training.loop import TrainConfig, make_optimizer, train

def trainable_names(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_layer_groups_partition_bottom_to_top(tiny_classifier):
    model = tiny_classifier(layers=3)
    groups = layer_groups(model)
    assert len(groups) == 3 + 2  # embeddings, 3 blocks, head
    assert groups[0] == ["model.embed_tokens.weight"]
    assert groups[-1] == ["score.weight"]
    assert "model.norm.weight" in groups[-2]  # the final norm travels with the top block
    assert all(n.startswith("model.layers.1.") for n in groups[2])
    flat = [n for g in groups for n in g]
    assert sorted(flat) == sorted(n for n, _ in model.named_parameters())  # each parameter exactly once


def test_tied_weights_counted_once(tiny_llama):
    torch.manual_seed(0)
    lm = tiny_llama(layers=3, tie_word_embeddings=True)
    flat = [n for g in layer_groups(lm) for n in g]
    assert len(flat) == len(set(flat)) and "lm_head.weight" not in flat
    assert trainable_report(lm).total == count_parameters(lm)


def test_freeze_all_but_patterns(tiny_classifier):
    model = tiny_classifier(layers=3)
    names = freeze_all_but(model, [r"^score\.", r"layers\.2\.self_attn"])
    assert set(names) == trainable_names(model)
    assert "score.weight" in names and all(n == "score.weight" or "layers.2.self_attn" in n for n in names)
    with pytest.raises(ValueError, match="No parameter name matches"):
        freeze_all_but(model, ["no_such_module"])


def test_unfreeze_top_blocks_and_linear_probe(tiny_classifier):
    model = tiny_classifier(layers=3)
    assert unfreeze_top_blocks(model, 0) == ["score.weight"]
    assert trainable_report(model).trainable == 16 * 3  # d_model × num_labels, no bias
    names = set(unfreeze_top_blocks(model, 1))
    assert any(n.startswith("model.layers.2.") for n in names) and "model.norm.weight" in names
    assert not any(n.startswith("model.layers.1.") for n in names)
    set_trainable_groups(model, len(layer_groups(model)))
    assert trainable_report(model).trainable == count_parameters(model)
    with pytest.raises(ValueError):
        set_trainable_groups(model, 99)


def test_trainable_report_reads_like_peft(tiny_classifier):
    model = tiny_classifier(layers=3)
    unfreeze_top_blocks(model, 0)
    report = trainable_report(model)
    assert report.total == sum(p.numel() for p in model.parameters())
    assert abs(report.percent - 100 * 48 / report.total) < 1e-9
    assert str(report).startswith("trainable params: 48 || all params: ")


def test_gradual_unfreezing_hook_opens_one_group_per_period(tiny_classifier):
    model = tiny_classifier(layers=3)
    hook = gradual_unfreezing(every=2)
    counts = []
    for step in range(1, 12):
        hook(step, model)
        counts.append(sum(1 for g in layer_groups(model) if any(model.get_parameter(n).requires_grad for n in g)))
    assert counts == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 5]


def test_gradual_unfreezing_in_train_leaves_frozen_groups_untouched(tiny_classifier):
    model = tiny_classifier(layers=3)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    rows = [{"input_ids": torch.randint(1, 64, (8,)), "attention_mask": torch.ones(8, dtype=torch.long),
             "labels": torch.tensor(i % 3)} for i in range(16)]
    config = TrainConfig(learning_rate=1e-2, max_steps=3, per_device_train_batch_size=4, disable_tqdm=True)
    opt = make_optimizer(model, config, [{"params": list(model.parameters())}])
    train(model, rows, config, optimizer=opt, on_step_begin=gradual_unfreezing(every=2))
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    groups = layer_groups(model)
    assert set(groups[-1]) <= changed and set(groups[-2]) & changed  # head from step 1, top block from step 3
    assert not (set(groups[0]) | set(groups[1])) & changed  # embeddings and block 0 never unfrozen


def test_discriminative_lr_groups_divide_by_factor(tiny_classifier):
    model = tiny_classifier(layers=3)
    groups = discriminative_lr_groups(model, lr=1e-3, factor=2.6)
    lrs = [g["lr"] for g in groups]
    assert lrs[-1] == 1e-3
    assert all(abs(lrs[i + 1] / lrs[i] - 2.6) < 1e-12 for i in range(len(lrs) - 1))
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
