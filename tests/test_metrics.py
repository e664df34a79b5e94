import math

import pytest
import torch
from transformers import BatchEncoding

from course_lib.data.datasets import data_dir, read_jsonl
from course_lib.metrics import (accuracy, bits_per_byte, evaluate_classifier, mean_nll, next_token_accuracy,
                                perplexity, rolling_windows, token_windows)
from course_lib.models.loading import load_base_model, load_tokenizer
from course_lib.models.pretraining import PretrainConfig, build_model


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


def test_bits_per_byte_of_a_uniform_model_is_tokens_times_log2_vocab_over_bytes(text_tokenizer, text_llama, texts):
    """Zero logits: every prediction costs log2(V) bits, so the count of predicted tokens is checked exactly."""
    model = text_llama()
    torch.nn.init.zeros_(model.model.embed_tokens.weight)  # tied: the head is zero too, logits are all 0
    texts = texts[:3] + [" ".join(texts[3:9])]  # the last text is cut into several windows
    n_tokens = sum(len(text_tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    expected = n_tokens * math.log2(len(text_tokenizer)) / n_bytes
    assert math.isclose(bits_per_byte(model, text_tokenizer, texts, max_length=8, batch_size=3), expected,
                        rel_tol=1e-6)


def test_bits_per_byte_matches_a_hand_computation(text_tokenizer, text_llama):
    """One short text, one window: -Σ log2 p(token | start, earlier tokens) / UTF-8 bytes (é is 2 bytes)."""
    model, text = text_llama(seed=3), "The function returns the café length."
    ids = [text_tokenizer.bos_token_id] + text_tokenizer(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].double(), -1)
    bits = -sum(logp[i, ids[i + 1]].item() for i in range(len(ids) - 1)) / math.log(2)
    assert len(text.encode("utf-8")) == len(text) + 1
    assert math.isclose(bits_per_byte(model, text_tokenizer, [text]), bits / (len(text) + 1), rel_tol=1e-5)


def test_rolling_windows_predict_every_token_once(text_tokenizer, texts):
    text = " ".join(texts[:5])
    ids = text_tokenizer(text, add_special_tokens=False)["input_ids"]
    windows = rolling_windows(text_tokenizer, text, max_length=8)
    assert windows[0][0] == text_tokenizer.bos_token_id and len(windows) > 2
    assert all(a[-1] == b[0] for a, b in zip(windows, windows[1:]))  # one token of overlap
    assert [t for w in windows for t in w[1:]] == ids
