import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

import course_lib.models.pretraining as pretrain_mod
from course_lib.data.datasets import data_dir, read_jsonl
from course_lib.models.pretraining import PretrainConfig, pretrain


@pytest.fixture()
def tiny(tmp_path, monkeypatch):
    rows = read_jsonl(data_dir() / "corpus" / "train.jsonl")[:120]
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))  # no general set there: the card skips it
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for split, part in (("train", rows[:100]), ("validation", rows[100:])):
        (corpus / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    return lambda name: PretrainConfig(vocab_size=300, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                       num_attention_heads=2, num_key_value_heads=2, seq_len=16, per_device_train_batch_size=4,
                                       max_steps=4, warmup_steps=1, eval_steps=2, eval_texts=5,
                                       out_dir=str(tmp_path / name / "model"), checkpoint_dir=str(tmp_path / name / "ckpt"),
                                       corpus_dir=str(corpus))


def _weights(path):
    return AutoModelForCausalLM.from_pretrained(path).state_dict()


def test_pretrain_saves_a_loadable_llama_with_card(tiny):
    cfg = tiny("a")
    figures = pretrain(cfg)
    model = AutoModelForCausalLM.from_pretrained(cfg.out_dir)
    assert type(model).__name__ == "LlamaForCausalLM"
    names = {n.split(".")[-2] for n, _ in model.named_parameters() if n.endswith("weight")}
    assert {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"} <= names
    clf = AutoModelForSequenceClassification.from_pretrained(cfg.out_dir, num_labels=3)
    assert clf.score.out_features == 3
    tok = AutoTokenizer.from_pretrained(cfg.out_dir)
    assert tok("def")["input_ids"][0] == tok.bos_token_id
    card = (pretrain_mod.Path(cfg.out_dir) / "README.md").read_text()
    assert f"{figures['parameters']:,}" in card and "PSF" in card
    assert figures["validation_perplexity"] < figures["random_init_validation_perplexity"]


def test_pretrain_is_deterministic_and_resumable(tiny, monkeypatch):
    pretrain(tiny("full"))
    reference = _weights(tiny("full").out_dir)

    real_lr = pretrain_mod._lr_at
    def interrupt_at_step_3(step, config):
        if step == 2:
            raise KeyboardInterrupt
        return real_lr(step, config)
    monkeypatch.setattr(pretrain_mod, "_lr_at", interrupt_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        pretrain(tiny("resumed"))
    monkeypatch.setattr(pretrain_mod, "_lr_at", real_lr)
    pretrain(tiny("resumed"))  # picks up the step-2 checkpoint
    resumed = _weights(tiny("resumed").out_dir)
    for name, tensor in reference.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=0, atol=0)
