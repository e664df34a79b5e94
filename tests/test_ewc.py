"""course_lib.forgetting.ewc: the penalty is Kirkpatrick et al.'s formula and its gradient; the Fisher is well-formed (lesson 05)."""

import math

import torch

from course_lib.data.encoding import collator_for, tokenize_causal
from course_lib.forgetting.ewc import EWCPenalty, fisher_diagonal


def test_ewc_penalty_zero_at_anchor_and_matches_formula(text_tokenizer, text_llama):
    model = text_llama()
    fisher = {n: torch.rand_like(p) for n, p in model.named_parameters()}
    penalty = EWCPenalty(model, fisher, lam=3.0)
    assert penalty(model).item() == 0.0
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    expected = 0.0
    for n, p in model.named_parameters():
        expected += (3.0 / 2) * (fisher[n] * (p - penalty.anchor[n]) ** 2).sum().item()
    assert math.isclose(penalty(model).item(), expected, rel_tol=1e-5)
    # The penalty's gradient pulls each weight back: λ F (θ − θ*)
    model.zero_grad()
    penalty(model).backward()
    n, p = next(iter(model.named_parameters()))
    assert torch.allclose(p.grad, 3.0 * fisher[n] * (p - penalty.anchor[n]), atol=1e-7)


def test_fisher_is_non_negative_and_zero_for_frozen(text_tokenizer, text_llama, texts):
    model = text_llama()
    model.model.embed_tokens.weight.requires_grad = False
    rows = tokenize_causal(text_tokenizer, texts[:6], max_length=32)
    fisher = fisher_diagonal(model, rows, collator_for(text_tokenizer, "causal-lm"))
    assert "model.embed_tokens.weight" not in fisher
    assert all((f >= 0).all() for f in fisher.values())
    assert sum(f.sum().item() for f in fisher.values()) > 0
    assert all(p.grad is None for p in model.parameters()), "gradients must be cleared afterwards"

