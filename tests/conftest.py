"""Shared fixtures: tiny Llama models and data built in milliseconds on one CPU thread.

Factories rather than objects, so each test gets a fresh model and can change its shape:
`tiny_llama()`, `tiny_llama(layers=3)`, `tiny_classifier(num_labels=3)`, `classification_rows(32)`.
"""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

from course_lib.models.base import set_threads

# Short docstring-like sentences for tests that need a real tokenizer (course_lib.models.pretraining.train_tokenizer).
TEXTS = [f"The function number {i} returns the {w} of its argument, or raises ValueError." for i, w in
         enumerate(["length", "square", "name", "type", "size", "first item", "last item", "sum"] * 3)]


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Tiny matrices: one thread is faster (much faster on a shared CPU), and results repeat exactly."""
    previous = torch.get_num_threads()
    set_threads(1)
    yield
    torch.set_num_threads(previous)


def make_llama(task: str = "causal-lm", *, vocab_size: int = 64, hidden_size: int = 16, layers: int = 2,
               heads: int = 2, num_labels: int = 3, tie_word_embeddings: bool = False, pad_token_id: int = 0,
               seed: int = 0):
    """A randomly initialised Llama (causal LM or sequence classifier), in eval mode."""
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                      num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                      max_position_embeddings=64, tie_word_embeddings=tie_word_embeddings, pad_token_id=pad_token_id)
    if task == "classification":
        cfg.num_labels = num_labels
        return LlamaForSequenceClassification(cfg).eval()
    return LlamaForCausalLM(cfg).eval()


@pytest.fixture
def tiny_llama():
    """Factory of tiny causal LMs: tiny_llama(hidden_size=32, layers=2, ...)."""
    return make_llama


@pytest.fixture(scope="session")
def chat_tok():
    """SmolLM2-135M-Instruct's tokenizer (ChatML template): lessons 06 and 07's tests render chats with it."""
    from course_lib.models.loading import load_tokenizer
    from course_lib.tuning.sft import DEFAULT_MODEL
    return load_tokenizer(DEFAULT_MODEL)


@pytest.fixture
def small_chat_model(tiny_llama, chat_tok):
    """Factory of tiny random Llamas with chat_tok's vocabulary: small_chat_model(seed=0)."""
    return lambda seed=0: tiny_llama(vocab_size=len(chat_tok), hidden_size=16, pad_token_id=chat_tok.pad_token_id,
                                     seed=seed)


@pytest.fixture
def tiny_classifier():
    """Factory of tiny sequence classifiers: tiny_classifier(num_labels=3, layers=3, ...)."""
    return lambda **kw: make_llama("classification", **kw)


@pytest.fixture
def classification_rows():
    """Factory of n tokenized rows (8 random ids each, labels cycling 0, 1, 2), seeded."""
    def rows(n: int = 32, seed: int = 0) -> list[dict]:
        g = torch.Generator().manual_seed(seed)
        return [{"input_ids": torch.randint(1, 64, (8,), generator=g),
                 "attention_mask": torch.ones(8, dtype=torch.long), "labels": torch.tensor(i % 3)}
                for i in range(n)]
    return rows


@pytest.fixture(scope="session")
def texts() -> list[str]:
    """TEXTS: 24 short docstring-like sentences."""
    return list(TEXTS)


@pytest.fixture(scope="session")
def text_tokenizer():
    """A 300-token byte-level BPE trained on TEXTS (the course's tokenizer recipe, in miniature)."""
    from course_lib.models.pretraining import train_tokenizer
    return train_tokenizer(TEXTS, vocab_size=300)


@pytest.fixture
def text_llama(text_tokenizer):
    """Factory of tiny causal LMs sized for `text_tokenizer` (tied embeddings, like course-tiny)."""
    return lambda seed=0: make_llama(vocab_size=len(text_tokenizer), hidden_size=32, tie_word_embeddings=True,
                                     pad_token_id=text_tokenizer.pad_token_id, seed=seed)
