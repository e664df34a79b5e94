"""course_lib.tuning.sft: the hand-written assistant-only mask equals TRL's, the config maps onto SFTConfig, `course sft`'s file.

The tokenizer is SmolLM2-135M-Instruct's (its ChatML template is what the lesson teaches); the model
under it is a tiny random Llama with the same vocabulary, so every test runs in seconds.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path

import pytest
import torch

from course_lib import cli
from course_lib.data.datasets import format_ok
from course_lib.metrics import rouge_l
from course_lib.commands.tuning import run_sft
from course_lib.tuning import sft

CONVERSATION = [{"role": "user", "content": "Explain what the Python function `math.fabs` does.\n\ndef fabs(x)"},
                {"role": "assistant", "content": "Return the absolute value of the float x."}]


def test_mask_keeps_only_the_reply_and_its_end_of_turn(chat_tok):
    out = sft.assistant_only_labels(chat_tok, CONVERSATION)
    kept = [t for t in out["labels"] if t != -100]
    assert chat_tok.decode(kept) == "Return the absolute value of the float x.<|im_end|>\n"
    assert len(out["labels"]) == len(out["input_ids"])
    assert sft.whole_text_labels(chat_tok, CONVERSATION)["labels"] == out["input_ids"]


def test_mask_covers_every_assistant_turn(chat_tok):
    messages = CONVERSATION + [{"role": "user", "content": "Shorter?"}, {"role": "assistant", "content": "abs."}]
    kept = chat_tok.decode([t for t in sft.assistant_only_labels(chat_tok, messages)["labels"] if t != -100])
    assert kept == "Return the absolute value of the float x.<|im_end|>\nabs.<|im_end|>\n"


def test_mask_equals_trl_on_the_same_batch(chat_tok, small_chat_model, tmp_path):
    rows = sft.task_rows("train", 6)
    config = sft.SFTRunConfig(max_steps=1, per_device_train_batch_size=6, early_stopping_patience=0)
    trainer = sft.sft_trainer(small_chat_model(), chat_tok, rows, [], config, str(tmp_path), eval_strategy="no")
    theirs = trainer.data_collator([trainer.train_dataset[i] for i in range(len(rows))])
    ours = sft.pad_batch([sft.assistant_only_labels(chat_tok, r["messages"]) for r in rows], chat_tok.pad_token_id)
    for key in ("input_ids", "attention_mask", "labels"):
        assert torch.equal(theirs[key], ours[key]), key


def test_whole_text_equals_trl_without_completion_only_loss(chat_tok, small_chat_model, tmp_path):
    rows = sft.task_rows("train", 4)
    config = sft.SFTRunConfig(max_steps=1, early_stopping_patience=0, completion_only_loss=False)
    trainer = sft.sft_trainer(small_chat_model(), chat_tok, rows, [], config, str(tmp_path), eval_strategy="no")
    theirs = trainer.data_collator([trainer.train_dataset[i] for i in range(len(rows))])
    ours = sft.pad_batch([sft.whole_text_labels(chat_tok, r["messages"]) for r in rows], chat_tok.pad_token_id)
    assert torch.equal(theirs["labels"], ours["labels"])


def test_config_names_reach_sft_config(tmp_path):
    config = sft.SFTRunConfig(learning_rate=1e-4, max_steps=7, per_device_train_batch_size=3, eval_steps=5,
                              early_stopping_patience=2, seed=11, max_length=99)
    args = config.to_sft_config(str(tmp_path))
    for name in ("learning_rate", "max_steps", "per_device_train_batch_size", "eval_steps", "seed", "max_length",
                 "completion_only_loss", "logging_steps", "lr_scheduler_type"):
        assert getattr(args, name) == getattr(config, name) or str(getattr(args, name)) == getattr(config, name), name
    assert args.load_best_model_at_end and args.metric_for_best_model == "eval_loss" and args.save_steps == 5
    assert not args.bf16 and not args.activation_checkpointing
    lora = config.lora_config()
    assert (lora.r, lora.lora_alpha, lora.target_modules) == (4, 8.0, "all-linear")
    assert not sft.SFTRunConfig(early_stopping_patience=0).to_sft_config(str(tmp_path)).load_best_model_at_end


def test_prompt_formats(chat_tok):
    row = {"messages": CONVERSATION}
    chat = sft.prompt_for(chat_tok, row, "chat")
    assert chat.endswith(sft.generation_prompt(chat_tok)) and sft.generation_prompt(chat_tok) == "<|im_start|>assistant\n"
    assert sft.prompt_for(chat_tok, row, "none") == CONVERSATION[0]["content"] + "\n"
    assert sft.prompt_for(chat_tok, row, "alpaca").startswith("### Instruction:\n") and \
        sft.prompt_for(chat_tok, row, "alpaca").endswith("### Response:\n")
    with pytest.raises(ValueError, match="template"):
        sft.prompt_for(chat_tok, row, "llama")


def test_scores():
    assert rouge_l(["Return the value."], ["Return the value."]) == 1.0
    assert 0 < rouge_l(["Return a value."], ["Return the absolute value of x."]) < 1
    assert format_ok("Return the value.") and not format_ok("Return\nthe value.")
    assert not format_ok("Return the value") and not format_ok(" ".join(["w"] * 30) + ".")


def test_response_nll_ignores_the_prompt(chat_tok, small_chat_model):
    model = small_chat_model()
    rows = sft.task_rows("validation", 3)
    nll = sft.response_nll(model, chat_tok, rows)
    assert nll == pytest.approx(sft.response_nll(model, chat_tok, rows, batch_size=1), rel=1e-5)
    one = rows[0]
    prompt = chat_tok(sft.prompt_for(chat_tok, one), add_special_tokens=False)["input_ids"]
    answer = chat_tok(one["messages"][-1]["content"], add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([prompt + answer])).logits[0]
    by_hand = torch.nn.functional.cross_entropy(logits[len(prompt) - 1:-1], torch.tensor(answer)).item()
    assert sft.response_nll(model, chat_tok, rows[:1]) == pytest.approx(by_hand, rel=1e-5)


def test_answer_cap_and_cuts(chat_tok, small_chat_model):
    refs = ["Return the value.", "Return the number of items in a container, or raise TypeError."]
    longest = len(chat_tok(refs[1], add_special_tokens=False)["input_ids"])
    assert sft.answer_cap(chat_tok, refs) == -(-3 * longest // 2) + 1
    model = small_chat_model()
    prompt = sft.prompt_for(chat_tok, {"messages": [{"role": "user", "content": "Explain `len`."},
                                                    {"role": "assistant", "content": refs[1]}]})
    answers, cut = sft.greedy_answers_and_cuts(model, chat_tok, [prompt], 3)
    ids = chat_tok(prompt)["input_ids"]
    with torch.no_grad():
        out = model.generate(input_ids=torch.tensor([ids]), max_new_tokens=3, do_sample=False,
                             pad_token_id=chat_tok.pad_token_id)[0, len(ids):].tolist()
    assert cut == [len(out) == 3 and chat_tok.eos_token_id not in out]


def test_one_generation_serves_every_cap_and_a_padded_batch_changes_no_token(chat_tok, small_chat_model):
    model = small_chat_model()
    prompts = [sft.prompt_for(chat_tok, r) for r in sft.task_rows("test", 3)]
    assert len({len(chat_tok(p)["input_ids"]) for p in prompts}) > 1  # different lengths: the batch is padded
    one_at_a_time = sft.greedy_answer_ids(model, chat_tok, prompts, 6)
    assert sft.greedy_answer_ids(model, chat_tok, prompts, 6, batch_size=3) == one_at_a_time
    for cap in (2, 6):  # the first `cap` tokens of the longer answers are the answers at `cap`
        assert sft.answers_and_cuts(chat_tok, one_at_a_time, cap) == sft.greedy_answers_and_cuts(model, chat_tok,
                                                                                                 prompts, cap)
    eos, word = chat_tok.eos_token_id, chat_tok("Return", add_special_tokens=False)["input_ids"]
    assert sft.answers_and_cuts(chat_tok, [word + [eos], word * 3], 2) == (["Return", "ReturnReturn"], [False, True])


@pytest.mark.slow
def test_sft_command_writes_results_and_adapter(chat_tok, small_chat_model, tmp_path, monkeypatch):
    monkeypatch.setattr(sft, "load_base_model", lambda name=None, **kw: small_chat_model())
    config = sft.SFTRunConfig(train_rows=8, eval_rows=4, test_rows=2, max_steps=4, per_device_train_batch_size=4,
                              eval_steps=2, logging_steps=2, max_new_tokens=3, adapter_dir=str(tmp_path / "adapter"),
                              out=str(tmp_path / "sft.json"))
    assert run_sft(config) == 0
    result = json.loads((tmp_path / "sft.json").read_text())
    assert cli.parse(shlex.split(result["command"])[1:]) == ("sft", (dataclasses.replace(config, out=""),))
    assert result["seed"] == 0 and result["config"]["max_steps"] == 4
    assert result["eval_curve"]["step"][0] == 0 and len(result["eval_curve"]["eval_loss"]) >= 2
    assert result["eval_curve"]["eval_loss"][0] != result["base_eval_response_nll"]  # step 0 is TRL's eval_loss too
    assert 0 <= result["before"]["chat"]["truncated"] <= 2
    assert set(result["before"]) == set(result["after"]) == set(sft.TEMPLATES)
    for key in ("rouge_l", "exact", "format_rate", "response_ppl", "answers"):
        assert key in result["after"]["chat"], key
    weights = (tmp_path / "adapter" / "adapter_model.safetensors").stat().st_size
    assert result["wall_seconds"] > 0 and result["adapter_bytes"] > weights
    assert (tmp_path / "adapter" / "adapter_config.json").exists()
    assert "seed 0" in (tmp_path / "adapter" / "README.md").read_text()
    assert result["whole_text"]["steps"] == result["stopped_at_step"]


def _small_run(tmp_path, **kw):
    return sft.SFTRunConfig(train_rows=8, eval_rows=4, test_rows=2, max_steps=4, per_device_train_batch_size=4,
                            eval_steps=2, logging_steps=2, max_new_tokens=3, adapter_dir=str(tmp_path / "adapter"),
                            out=str(tmp_path / "sft.json"), **kw)


def _snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_an_interrupted_sft_changes_nothing_and_resumes(chat_tok, small_chat_model, tmp_path, monkeypatch, capfd):
    """Ctrl-C right after the adapter is saved leaves the previous adapters and sft.json as they were;
    `--resume` after Ctrl-C in training continues from the last checkpoint to the uninterrupted run's adapter."""
    from transformers import TrainerCallback

    from course_lib.cli import main

    monkeypatch.setattr(sft, "load_base_model", lambda name=None, **kw: small_chat_model())
    monkeypatch.setattr(sft, "checkpoints_dir", lambda: tmp_path / "checkpoints")
    assert run_sft(_small_run(tmp_path)) == 0  # "the committed run"
    committed = {name: _snapshot(tmp_path / name) for name in ("adapter", "adapter-whole-text")}
    committed_json = (tmp_path / "sft.json").read_bytes()
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert not Path(config["base_model_name_or_path"]).is_absolute()
    assert config["target_modules"] == sorted(config["target_modules"])

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt
    with monkeypatch.context() as m:  # Ctrl-C just after the new adapter was saved (while its card is written)
        m.setattr(sft, "write_adapter_card", interrupt)
        with pytest.raises(KeyboardInterrupt, match="unchanged"):
            run_sft(_small_run(tmp_path, seed=1))
    assert {name: _snapshot(tmp_path / name) for name in committed} == committed
    assert (tmp_path / "sft.json").read_bytes() == committed_json
    assert not list(tmp_path.glob(".staging-*"))  # nothing left half-written beside them

    class StopAtStep3(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise KeyboardInterrupt
    trainer = sft.sft_trainer
    with monkeypatch.context() as m:
        m.setattr(sft, "sft_trainer", lambda *a, **k: [t := trainer(*a, **k), t.add_callback(StopAtStep3())][0])
        # at this process's thread count, as the runs below: a float sum split over other threads rounds differently
        assert main(["sft", f"--threads={torch.get_num_threads()}", *_args(_small_run(tmp_path, seed=1))]) == 130
    assert (tmp_path / "sft.json").read_bytes() == committed_json
    assert list((tmp_path / "checkpoints").glob("reply-only/checkpoint-2"))
    with pytest.raises(ValueError, match="other options"):
        run_sft(_small_run(tmp_path, seed=2, resume=True))
    assert run_sft(_small_run(tmp_path, seed=1, resume=True)) == 0
    resumed = _snapshot(tmp_path / "adapter")["adapter_model.safetensors"]
    assert not (tmp_path / "checkpoints").exists()  # removed once the run has ended
    capfd.readouterr()
    assert run_sft(_small_run(tmp_path, seed=1)) == 0  # the same run, never interrupted
    assert _snapshot(tmp_path / "adapter")["adapter_model.safetensors"] == resumed
    # peft warned once per adapter when it saved over an old adapter's card; now each lands in a fresh folder
    assert "Repo card metadata block was not found" not in capfd.readouterr().err


def _args(config) -> list[str]:
    from dataclasses import asdict
    return [f"--{k}={v}" for k, v in asdict(config).items()]


def test_a_base_model_without_chat_template_stops_in_one_sentence():
    """Most base models a learner brings have no chat template: lesson 06's first cell says what to do."""
    from course_lib.models import load_tokenizer

    base = load_tokenizer("course-tiny")
    sft.require_chat_template("course-tiny", base)  # course-tiny has one (a minimal one of its own)
    base.chat_template = None  # as a base model's tokenizer comes
    with pytest.raises(sft.NoChatTemplate, match="has no chat template .*clone_chat_template") as caught:
        sft.require_chat_template("my-base-model", base)
    assert "\n" not in str(caught.value) and len(caught.value._render_traceback_()) == 1
