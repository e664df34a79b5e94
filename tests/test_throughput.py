"""course_lib.throughput: the meter counts each training token once, whichever loop or wrapper trains."""

import torch

from course_lib.throughput import TokenMeter, active_meter, cpu_cores


def _batch(rows=3, length=10, pad=4, vocab=64):
    ids = torch.randint(1, vocab, (rows, length), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    if pad:
        mask[0, -pad:] = 0  # one padded row: its pad positions are computed, and counted
    return ids, mask


def test_counts_training_lookups_apart_from_evaluation(tiny_llama):
    model = tiny_llama()
    ids, mask = _batch()
    with TokenMeter() as meter:
        assert active_meter() is meter
        model.train()
        model(input_ids=ids, attention_mask=mask, labels=ids).loss.backward()
        model.eval()
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask)
    assert active_meter() is None
    assert meter.train_tokens == 30
    assert meter.other_tokens == 30
    model.train()
    model(input_ids=ids)  # after the block: not counted
    assert meter.train_tokens == 30


def test_a_wrapped_model_is_counted_once(tiny_llama):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tiny_llama(), LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM"))
    ids, _ = _batch(pad=0)
    with TokenMeter() as meter:
        model.train()
        model(input_ids=ids, labels=ids).loss.backward()  # PeftModel -> LlamaForCausalLM -> embeddings: one count
    assert meter.train_tokens == ids.numel()


def test_reading_names_threads_cores_and_rate():
    with TokenMeter() as meter:
        meter.train_tokens = 1000
    r = meter.reading()
    assert r["threads"] == torch.get_num_threads() and r["cpu_cores"] == cpu_cores() >= 1
    assert r["train_tokens_per_second"] > 0 and "tokens/s end to end" in meter.summary()
