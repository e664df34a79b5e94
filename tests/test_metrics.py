import math

import pytest
import torch
from transformers import BatchEncoding

from course_lib.data import data_dir, read_jsonl
from course_lib.metrics import (accuracy, evaluate_classifier, mean_nll, next_token_accuracy, perplexity,
                                token_windows)
from course_lib.models import load_base_model, load_tokenizer
from course_lib.pretrain import PretrainConfig, build_model


def test_pretrained_perplexity_is_a_small_fraction_of_random_init():
    tok = load_tokenizer()
    texts = [r["text"] for r in read_jsonl(data_dir() / "general" / "test.jsonl")[:40]]
    trained = perplexity(load_base_model(), tok, texts)
    random_init = perplexity(build_model(PretrainConfig()), tok, texts)
    assert random_init > 1000  # ~vocabulary size: uniform guessing
    assert trained < 0.05 * random_init


def test_perplexity_is_exp_of_mean_nll_and_batch_independent():
    tok, model = load_tokenizer(), load_base_model()
    texts = ["Return the number of items.", "This module provides sockets. " * 20]
    nll = mean_nll(model, tok, texts, batch_size=1)
    assert math.isclose(perplexity(model, tok, texts, batch_size=2), math.exp(nll), rel_tol=1e-4)


def test_next_token_accuracy_equals_a_one_window_at_a_time_count(text_tokenizer, text_llama, texts):
    """Batched and padded vs the plainest possible loop: the same tokens, the same verdicts."""
    model = text_llama()
    texts = texts[:6] + [" ".join(texts[6:9])]  # one text longer than a window: it is cut in two
    windows = token_windows(text_tokenizer, texts, max_length=16)
    assert any(len(w) == 16 for w in windows) and len(windows) > len(texts)
    correct = total = 0
    with torch.no_grad():
        for w in windows:
            pred = model(input_ids=torch.tensor([w])).logits[0, :-1].argmax(-1)
            correct += int((pred == torch.tensor(w[1:])).sum())
            total += len(w) - 1
    assert next_token_accuracy(model, text_tokenizer, texts, max_length=16, batch_size=3) == correct / total


def test_evaluate_classifier_counts_exactly(tiny_classifier):
    class Tok:  # a stand-in tokenizer: one token per word, right padding
        def __call__(self, texts, **kw):
            ids = [[1 + len(w) for w in t.split()] for t in texts]
            width = max(map(len, ids))
            pad = [i + [0] * (width - len(i)) for i in ids]
            mask = [[1] * len(i) + [0] * (width - len(i)) for i in ids]
            return BatchEncoding({"input_ids": torch.tensor(pad), "attention_mask": torch.tensor(mask)})
    model = tiny_classifier()
    rows = [{"text": "a bb ccc" * (i % 3 + 1), "label": i % 3} for i in range(7)]
    preds = model(**Tok()([r["text"] for r in rows])).logits.argmax(-1).tolist()
    expected = sum(p == r["label"] for p, r in zip(preds, rows)) / 7
    assert evaluate_classifier(model, Tok(), rows)["accuracy"] == expected


def test_accuracy_checks_shapes():
    assert accuracy([1, 2, 3], [1, 2, 0]) == 2 / 3
    with pytest.raises(ValueError, match="undefined"):
        accuracy([], [])
    with pytest.raises(ValueError, match="shape"):
        accuracy(torch.tensor([1, 2]), torch.tensor([1, 2, 3]))
