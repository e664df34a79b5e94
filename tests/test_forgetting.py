"""Tests of course_lib.forgetting on tiny CPU models (lesson 05)."""

import json
import math

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from course_lib import forgetting as fg
from course_lib.pretrain import train_tokenizer
from course_lib.training import collator_for, tokenize_causal

TEXTS = [f"The function number {i} returns the {w} of its argument, or raises ValueError." for i, w in
         enumerate(["length", "square", "name", "type", "size", "first item", "last item", "sum"] * 3)]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matrices: one thread is faster, and much faster on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(TEXTS, vocab_size=300)


def tiny_model(tokenizer, seed=0):
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                      tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id)
    return LlamaForCausalLM(cfg).eval()


def test_sign_convention():
    assert fg.forgetting(10.0, 12.0) > 0, "general perplexity went up: that is forgetting, so positive"
    assert fg.forgetting(10.0, 8.0) < 0
    assert fg.forgetting(7.0, 7.0) == 0.0
    assert math.isclose(fg.forgetting(10.0, 20.0), math.log(2))
    assert fg.target_gain(10.0, 5.0) > 0, "target perplexity went down: that is learning, so positive"
    assert math.isclose(fg.target_gain(10.0, 5.0), math.log(2))


def test_replay_fraction_honoured():
    target = [("target", i) for i in range(10)]
    old = [("old", i) for i in range(7)]
    for fraction, batch_size, expected in [(0.25, 16, 4), (0.5, 8, 4), (0.0, 8, 0), (1.0, 4, 4), (0.1, 16, 2)]:
        stream = fg.replay_mix(target, old, fraction, batch_size, seed=3)
        for _ in range(20):
            batch = next(stream)
            assert len(batch) == batch_size
            assert sum(tag == "old" for tag, _ in batch) == expected
    with pytest.raises(ValueError):
        next(fg.replay_mix(target, old, 1.5, 8))
    with pytest.raises(ValueError):
        next(fg.replay_mix(target, [], 0.5, 8))


def test_replay_mix_cycles_through_every_row_and_is_seeded():
    target = list(range(12))
    first = [next(fg.replay_mix(target, ["x"], 0.0, 4, seed=1)) for _ in range(1)]
    again = [next(fg.replay_mix(target, ["x"], 0.0, 4, seed=1)) for _ in range(1)]
    assert first == again
    stream = fg.replay_mix(target, ["x"], 0.0, 4, seed=1)
    seen = [row for _ in range(3) for row in next(stream)]  # one pass = 12 rows
    assert sorted(seen) == target


def test_ewc_penalty_zero_at_anchor_and_matches_formula(tokenizer):
    model = tiny_model(tokenizer)
    fisher = {n: torch.rand_like(p) for n, p in model.named_parameters()}
    penalty = fg.EWCPenalty(model, fisher, lam=3.0)
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


def test_fisher_is_non_negative_and_zero_for_frozen(tokenizer):
    model = tiny_model(tokenizer)
    model.model.embed_tokens.weight.requires_grad = False
    rows = tokenize_causal(tokenizer, TEXTS[:6], max_length=32)
    fisher = fg.fisher_diagonal(model, rows, collator_for(tokenizer, "causal-lm"))
    assert "model.embed_tokens.weight" not in fisher
    assert all((f >= 0).all() for f in fisher.values())
    assert sum(f.sum().item() for f in fisher.values()) > 0
    assert all(p.grad is None for p in model.parameters()), "gradients must be cleared afterwards"


def test_top_method_trains_only_the_top_block(tokenizer):
    model = fg._prepare(tiny_model(tokenizer), fg.RunSpec("top", method="top", top_layers=1))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("model.layers.1.", "model.norm.")) for n in trainable)


def test_prompt_of_cuts_before_the_answer():
    text = fg.instruction_text({"instruction": "Explain `f`.", "input": "def f(x)", "output": "Returns x."})
    assert fg.prompt_of(text) + "Returns x." == text


def test_next_token_accuracy_bounds(tokenizer):
    acc = fg.next_token_accuracy(tiny_model(tokenizer), tokenizer, TEXTS[:4], max_length=16)
    assert 0.0 <= acc <= 1.0


def test_runner_writes_results_with_schema(tokenizer, tmp_path):
    qa = [fg.instruction_text({"instruction": f"Explain item {i}.", "input": "", "output": t})
          for i, t in enumerate(TEXTS)]
    data = fg.TaskData(target_train=qa[:16], target_val=qa[16:20], general=TEXTS[20:],
                       replay=TEXTS[:8], task_b_train=TEXTS[8:16], task_b_val=TEXTS[16:18])
    runs = [fg.RunSpec("full"), fg.RunSpec("lora", method="lora", lora_r=2), fg.RunSpec("top", method="top"),
            fg.RunSpec("replay", replay_fraction=0.5), fg.RunSpec("ewc", ewc_lambda=10.0),
            fg.RunSpec("seq", task_b_steps=2)]
    config = fg.ExperimentConfig(seeds=(0, 1, 2), max_steps=2, batch_size=4, max_length=32, eval_steps=1,
                                 curve_texts=2, fisher_samples=4, answer_prompts=2, runs=runs)
    out = tmp_path / "forgetting.json"
    fg.run_experiment(tiny_model(tokenizer), tokenizer, data, config, out=out, log=None)
    results = json.loads(out.read_text())
    assert set(results) == {"meta", "base", "runs"}
    assert {"general_ppl", "general_acc", "target_ppl", "curve"} <= set(results["base"])
    assert len(results["runs"]) == len(runs) * 3
    for run in results["runs"]:
        assert {"name", "seed", "gain", "forgetting", "acc_drop", "general_ppl", "target_ppl", "curve",
                "trainable_params", "train_loss"} <= set(run)
        assert run["curve"]["step"] == [1, 2]
        assert math.isclose(run["forgetting"], math.log(run["general_ppl"] / results["base"]["general_ppl"]),
                            rel_tol=1e-9, abs_tol=1e-12)
    seq = [r for r in results["runs"] if r["name"] == "seq"]
    assert all("drop_on_a" in r and "after_b" in r and len(r["answers_after_b"]) == 2 for r in seq)
    summary = fg.summarize(results)
    assert summary["full"]["seeds"] == 3 and len(summary["full"]["gain"]) == 2
    lora = [r for r in results["runs"] if r["name"] == "lora"][0]
    full = [r for r in results["runs"] if r["name"] == "full"][0]
    assert lora["trainable_params"] < full["trainable_params"]
