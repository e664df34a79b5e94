"""course_lib.tuning.methods: each method's trainable parameters by hand = peft's count; the shared loop trains.

A tiny random Llama with SmolLM2's vocabulary stands in for the base (methods.load_base_model is replaced),
so every method builds and trains in seconds; QLoRA needs a real checkpoint (bitsandbytes quantizes at
load time) and is checked through its config only.
"""

from __future__ import annotations

import pytest
import torch

from course_lib.tuning import methods
from course_lib.tuning.sft import task_rows

HIDDEN, LAYERS, HEADS = 16, 2, 2


def linear_shapes(model) -> list[tuple[int, int]]:
    return [(m.in_features, m.out_features) for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and "lm_head" not in name]


@pytest.fixture
def build(monkeypatch, small_chat_model, chat_tok):
    monkeypatch.setattr(methods, "load_base_model", lambda name=None, **kw: small_chat_model())
    spec = methods.MethodSpec(r=4, lora_alpha=8.0, num_virtual_tokens=3, total_steps=8)
    return lambda name, **kw: methods.build_method(name, "tiny", spec, tokenizer_path=chat_tok.name_or_path, **kw)


@pytest.mark.parametrize("name", ["lora", "rslora", "dora", "pissa", "adalora", "glora", "ia3", "prompt_tuning",
                                  "prefix_tuning", "full"])
def test_trainable_parameters_by_hand_equal_peft(build, small_chat_model, name):
    model = build(name)
    shapes = linear_shapes(small_chat_model())
    kv = HIDDEN // HEADS * HEADS  # the tiny model has as many key/value heads as heads
    by_hand = {"lora": methods.lora_family_parameters(shapes, 4), "rslora": methods.lora_family_parameters(shapes, 4),
               "pissa": methods.lora_family_parameters(shapes, 4),
               "dora": methods.lora_family_parameters(shapes, 4, dora=True),
               "adalora": methods.lora_family_parameters(shapes, 6) + LAYERS * 7 * 6,  # init_r = 1.5 r, E: r per layer
               "glora": methods.glora_parameters(shapes, 4),  # A and B each rank r; no bias, so no C, D, E
               "ia3": methods.ia3_parameters(LAYERS, kv, 2 * HIDDEN),
               "prompt_tuning": methods.virtual_token_parameters(3, HIDDEN),
               "prefix_tuning": methods.virtual_token_parameters(3, HIDDEN, layers=LAYERS, kv_width=kv),
               "full": sum(p.numel() for p in small_chat_model().parameters())}[name]
    assert methods.trainable_parameters(model) == by_hand
    if name != "full":
        assert model.get_nb_trainable_parameters()[0] == by_hand


def test_rslora_scales_by_root_rank_and_pissa_keeps_the_output(build, small_chat_model):
    lora, rs = build("lora"), build("rslora")
    layer = lambda m: m.base_model.model.model.layers[0].self_attn.q_proj  # noqa: E731
    assert layer(lora).scaling["default"] == pytest.approx(8.0 / 4)
    assert layer(rs).scaling["default"] == pytest.approx(8.0 / 4 ** 0.5)
    ids = torch.tensor([[1, 5, 9, 30, 2]])
    base, pissa = small_chat_model(), build("pissa")
    with torch.no_grad():  # PiSSA moves the top singular directions into the adapter: the same function at step 0
        assert torch.allclose(base(ids).logits, pissa(ids).logits, atol=1e-4)
        assert not torch.allclose(layer(pissa).lora_B["default"].weight, torch.zeros(1))


def test_trim_virtual_tokens_returns_the_callers_positions(build):
    model = build("prompt_tuning")
    ids = torch.tensor([[1, 5, 9, 30]])
    with torch.no_grad():
        full = model(input_ids=ids).logits
        trimmed = methods.TrimVirtualTokens(model)(input_ids=ids).logits
    assert full.shape[1] == 4 + 3 and trimmed.shape[1] == 4
    assert torch.equal(trimmed, full[:, 3:])


def test_batches_are_seeded_and_the_loop_learns(build, chat_tok):
    rows = task_rows("train", 4)
    a = methods.training_batches(chat_tok, rows, 2, 3, seed=0)
    assert len(a) == 3 and a[0]["input_ids"].shape[0] == 2
    assert all(torch.equal(x["input_ids"], y["input_ids"]) for x, y in
               zip(a, methods.training_batches(chat_tok, rows, 2, 3, seed=0)))
    other = methods.training_batches(chat_tok, rows, 2, 3, seed=1)
    assert [x["input_ids"].shape for x in a] != [x["input_ids"].shape for x in other] or \
        not all(torch.equal(x["input_ids"], y["input_ids"]) for x, y in zip(a, other))
    model = build("lora")
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    log = methods.train_steps(model, [a[0]] * 6, learning_rate=1e-2)
    assert log["loss"][-1] < log["loss"][0]
    assert all(not torch.equal(p, before[n]) for n, p in model.named_parameters() if n in before and "lora_A" in n)
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)


def test_adalora_allocator_runs_and_prunes(build, chat_tok):
    model = build("adalora")
    batches = methods.training_batches(chat_tok, task_rows("train", 4), 2, 8, seed=0)
    methods.train_steps(model, batches, learning_rate=1e-2, adalora=True)
    ranks = [int((m.ranknum["default"]).item()) for m in model.modules() if hasattr(m, "ranknum")]
    assert ranks and all(r == 6 for r in ranks)  # the rank number stays the initial budget's; the mask prunes
    masked = sum(int((m.lora_E["default"] == 0).sum()) for m in model.modules() if hasattr(m, "lora_E"))
    assert masked > 0  # AdaLoRA set some singular values to zero: the budget moved


def test_configs_name_each_variant():
    assert methods.method_config("rslora").use_rslora
    assert methods.method_config("dora").use_dora
    assert methods.method_config("pissa").init_lora_weights.startswith("pissa")
    assert methods.method_config("full") is None
    assert type(methods.method_config("qlora")).__name__ == "LoraConfig"
    with pytest.raises(ValueError, match="unknown method"):
        methods.method_config("dylora")
    assert set(methods.NO_IMPLEMENTATION) == {"DyLoRA"}  # GLoRA is peft's `glora` tuner, a method here
    glora = methods.method_config("glora")
    assert type(glora).__name__ == "GloraConfig" and glora.config_A_B == "lora"


def test_glora_starts_as_the_base_and_trains(build, small_chat_model, chat_tok):
    model = build("glora")
    ids = torch.tensor([[1, 5, 9, 30, 2]])
    with torch.no_grad():  # Xd = 0: A = B = 0 at step 0, W_eff = W0
        assert torch.allclose(model(input_ids=ids).logits, small_chat_model()(ids).logits, atol=1e-5)
    batches = methods.training_batches(chat_tok, task_rows("train", 4), 2, 1, seed=0)
    log = methods.train_steps(model, batches * 6, learning_rate=1e-2)
    assert log["loss"][-1] < log["loss"][0]


def _scrambled(model):
    """Virtual tokens far from their start, so that they change what the model says."""
    for p in model.parameters():
        if p.requires_grad:
            p.data.normal_(0, 3, generator=torch.Generator().manual_seed(0))
    model.get_base_model().generation_config.eos_token_id = None  # decode the full length
    return model


def test_prefix_generate_ignores_the_prefix_and_the_cacheless_decoder_does_not(build):
    """peft 0.21 + transformers 5.24: `generate` on a prefix-tuned model answers as the base model does.

    peft writes the prefix to `past_key_values`, generate passes its own (empty) `cache` too, and transformers'
    `deprecate_kwarg` keeps `cache`, ignoring the prefix (methods.VirtualTokenGreedy's docstring)."""
    model = _scrambled(build("prefix_tuning"))
    ids = torch.tensor([[5, 9, 13, 20]])
    with torch.no_grad():
        forward_next = int(model(input_ids=ids).logits[0, -1].argmax())
        base_next = int(model.get_base_model()(input_ids=ids).logits[0, -1].argmax())
        generated = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=1, do_sample=False)
        cacheless = methods.CachelessGreedy(model).generate(input_ids=ids, max_new_tokens=1)
    assert forward_next != base_next  # the prefix changes the next token...
    assert int(generated[0, -1]) == base_next  # ...which generate does not see (if this fails, peft fixed it)
    assert int(cacheless[0, -1]) == forward_next


def test_prompt_tuning_generate_reinjects_the_virtual_tokens(build):
    """peft 0.21 + transformers 5.24: `generate` on a prompt-tuned model puts the virtual tokens in front of every
    new token again: peft looks for the cache under `past_key_values`, generate keeps it under `cache`, so peft's
    `requires_prompt_injection` is true at each step (peft_model.py, prepare_inputs_for_generation)."""
    model = _scrambled(build("prompt_tuning"))
    seen = []
    hook = model.get_base_model().model.register_forward_pre_hook(
        lambda mod, args, kwargs: seen.append(kwargs["inputs_embeds"].shape[1] if kwargs.get("inputs_embeds")
                                              is not None else kwargs["input_ids"].shape[1]), with_kwargs=True)
    ids = torch.tensor([[5, 9, 13, 20]])
    with torch.no_grad():
        model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=3, do_sample=False)
    hook.remove()
    # a correct cached decoder reads 3 + 4 positions, then 1 per new token; peft's path reads 3 + 1 per new token
    # (if this fails, peft or transformers changed: then check the decoders below against peft's generate again)
    assert seen == [3 + 4, 3 + 1, 3 + 1]


@pytest.mark.parametrize("name", ["prompt_tuning", "prefix_tuning"])
def test_virtual_token_decoder_is_greedy_decoding_by_forward(build, name):
    """The decoder the course uses for prompt and prefix tuning (its cache filled by hand) writes, token for token,
    what greedy decoding by peft's own `forward` writes. peft's `generate` does not (both tests above), so this
    test fails if the course's decoding goes through peft's path while it is broken."""
    model = _scrambled(build(name))
    ids = torch.tensor([[5, 9, 13, 20, 7]])
    by_forward = methods.CachelessGreedy(model).generate(input_ids=ids, max_new_tokens=12)
    used = methods.TrimVirtualTokens(model) if name == "prompt_tuning" else methods.VirtualTokenGreedy(model)
    assert torch.equal(used.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=12,
                                     do_sample=False), by_forward)
    assert by_forward.shape[1] == 5 + 12
    with torch.no_grad():
        peft_path = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False)
    assert not torch.equal(peft_path, by_forward)  # the broken path differs on this model (if not: see above)
