"""course_lib.tuning.packing: padding-free batches (TRL's collator) give each example exactly its padded losses."""

import torch

from course_lib.tuning.packing import collate, compare_batches, example_losses, pad_fraction


def _examples(n=6, vocab=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        ids = torch.randint(1, vocab, (5 + 3 * i,), generator=g).tolist()
        out.append({"input_ids": ids, "labels": [-100] * 3 + ids[3:]})  # a "prompt" of 3 tokens, masked
    return out


def test_padding_free_collation_has_no_pads_and_restarts_positions():
    ex = _examples(3)
    padded, free = collate(ex, 0, padding_free=False), collate(ex, 0, padding_free=True)
    assert pad_fraction(padded) > 0.2 and pad_fraction(free) == 0.0
    assert free["input_ids"].shape == (1, sum(len(e["input_ids"]) for e in ex))
    assert (free["position_ids"][0] == 0).sum() == 3


def test_each_example_keeps_its_losses_and_the_control_shows_leakage(tiny_llama):
    model = tiny_llama(vocab_size=64, hidden_size=32, layers=2)
    report = compare_batches(model, _examples(6), pad_token_id=0, batch_size=3, repeats=1)
    assert report["max_loss_diff"] < 1e-4  # attention does not cross examples
    assert report["max_loss_diff_without_restarts"] > 1e-2  # it would, without the position-id restarts
    assert 0 < report["pad_fraction_padded"] < 1 and report["pad_fraction_padding_free"] == 0.0
    assert report["real_tokens"] == sum(len(e["input_ids"]) for e in _examples(6))


def test_losses_count_only_targets(tiny_llama):
    model = tiny_llama(vocab_size=64)
    ex = _examples(2)
    losses = example_losses(model, collate(ex, 0, padding_free=False))
    assert [len(x) for x in losses] == [len(e["input_ids"]) - 3 for e in ex]  # every target after the prompt


def test_with_the_cache_on_attention_crosses_examples(tiny_llama):
    """transformers detects the restarts only without a KV cache; TRL passes use_cache=False for this reason."""
    model = tiny_llama(vocab_size=64, hidden_size=32)
    ex = _examples(3)
    padded, free = collate(ex, 0, padding_free=False), collate(ex, 0, padding_free=True)
    with torch.no_grad():
        reference = example_losses(model, padded)
        off = example_losses(model, free)
        on = example_losses(model, free, use_cache=True)
    assert max(float((a - b).abs().max()) for a, b in zip(reference, off)) < 1e-4
    assert max(float((a - b).abs().max()) for a, b in zip(reference, on)) > 1e-3
