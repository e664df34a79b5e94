import math

import pytest
import torch

from course_lib.data import data_dir, read_jsonl
from course_lib.metrics import accuracy, mean_nll, perplexity
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


def test_accuracy_checks_shapes():
    assert accuracy([1, 2, 3], [1, 2, 0]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="shape"):
        accuracy(torch.tensor([1, 2]), torch.tensor([1, 2, 3]))
