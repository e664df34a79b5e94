"""course_lib.tuning.dpo: the batch and the DPO loss and rewards equal TRL's `DPOTrainer`, `course dpo`'s file.

The tokenizer is SmolLM2-135M-Instruct's (its ChatML template renders the pairs); the model under it
is a tiny random Llama with the same vocabulary, so every test runs in seconds.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shlex

import pytest
import torch

from course_lib import cli
from course_lib.commands.tuning import run_dpo, run_orpo
from course_lib.tuning import dpo


def test_loss_by_hand_matches_the_formula():
    pc, pr, rc, rr = (torch.tensor([v]) for v in (-10.0, -12.0, -11.0, -11.5))
    out = dpo.dpo_loss(pc, pr, rc, rr, beta=0.5)
    expected = -math.log(1 / (1 + math.exp(-0.5 * ((-10 + 11) - (-12 + 11.5)))))
    assert out.loss.item() == pytest.approx(expected, rel=1e-6)
    assert out.chosen_rewards.item() == pytest.approx(0.5) and out.rejected_rewards.item() == pytest.approx(-0.25)
    zero = dpo.dpo_loss(pc, pr, pc, pr, beta=0.1)  # policy = reference: loss log 2, rewards 0
    assert zero.loss.item() == pytest.approx(math.log(2)) and dpo.logged_rewards(zero)["rewards/accuracies"] == 0.0


def _trained_looking(trainer):
    """Give the fresh adapter non-zero B (seeded), so that policy and reference differ."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in trainer.model.named_parameters():
            if "lora_B" in name:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_loss_and_rewards_equal_trl(chat_tok, small_chat_model, tmp_path, beta):
    pairs = dpo.preference_rows("train", 6)
    config = dpo.DPORunConfig(max_steps=1, per_device_train_batch_size=6)
    trainer = dpo.dpo_trainer(small_chat_model(), chat_tok, pairs, [], config, str(tmp_path), beta=beta, eval_strategy="no")
    theirs = trainer.data_collator([trainer.train_dataset[i] for i in range(len(pairs))])
    ours = dpo.pair_batch(chat_tok, pairs)
    for key in ("input_ids", "attention_mask", "completion_mask"):
        assert torch.equal(theirs[key], ours[key]), key
    _trained_looking(trainer)
    model = trainer.model.eval()
    with torch.no_grad():
        trl_loss = trainer.compute_loss(model, theirs).item()
        logged = {k: v[-1] for k, v in trainer._metrics["eval"].items()}
        policy = dpo.sequence_logps(model, ours)
        with model.disable_adapter():  # ref_model=None with a peft model: the reference is the adapter off
            ref = dpo.sequence_logps(model, ours)
    n = len(pairs)
    out = dpo.dpo_loss(policy[:n], policy[n:], ref[:n], ref[n:], beta)
    assert abs(out.loss.item() - trl_loss) < 1e-5
    assert out.loss.item() != pytest.approx(math.log(2), abs=1e-3)  # the adapter moved the policy
    for key, value in dpo.logged_rewards(out).items():
        assert value == pytest.approx(logged[key], abs=1e-5), key
    assert logged["logps/chosen"] == pytest.approx(policy[:n].mean().item(), abs=1e-4)


def test_evaluate_pairs_before_training_is_the_reference(chat_tok, small_chat_model, tmp_path):
    from peft import get_peft_model

    model = get_peft_model(small_chat_model(), dpo.DPORunConfig().lora_config())  # B = 0
    m = dpo.evaluate_pairs(model, chat_tok, dpo.preference_rows("test", 5), beta=0.1, batch_size=2)
    assert m["reward_margins"] == 0.0 and m["kl"] == pytest.approx(0.0, abs=1e-7)
    assert m["loss"] == pytest.approx(math.log(2)) and 0 <= m["accuracy"] <= 1


def test_token_kl_is_zero_for_equal_and_positive_otherwise():
    a = torch.randn(2, 3, 7, generator=torch.Generator().manual_seed(0))
    mask = torch.ones(2, 3)
    assert dpo.token_kl(a, a, mask) == pytest.approx(0.0, abs=1e-7)
    assert dpo.token_kl(a, a.flip(-1), mask) > 0


def test_win_rate_rule():
    refs = ["Return the value.", "Return the size."]
    w = dpo.win_rate(["Return the value.", "Size\nof it"], ["Sure! value", "Return the size."], refs)
    assert (w["wins"], w["ties"], w["losses"], w["win_rate"], w["changed"]) == (1, 0, 1, 0.5, 2)
    assert math.isclose(w["se"], 0.5)  # scores 1 and 0: sample std √0.5, over √2
    same = dpo.win_rate(refs, refs, refs)
    assert (same["ties"], same["changed"], same["se"]) == (2, 0, 0.0)


@pytest.mark.slow
def test_dpo_command_writes_results(chat_tok, small_chat_model, tmp_path, monkeypatch):
    monkeypatch.setattr(dpo, "sft_reference", lambda name=None, adapter=None: small_chat_model())
    monkeypatch.setattr(dpo, "checkpoints_dir", lambda: tmp_path / "checkpoints")
    config = dpo.DPORunConfig(betas=[0.1], seeds=[0, 1], train_pairs=4, eval_pairs=2, test_pairs=2, max_steps=2,
                              per_device_train_batch_size=2, eval_steps=1, max_new_tokens=2,
                              out=str(tmp_path / "dpo.json"))
    assert run_dpo(config) == 0
    result = json.loads((tmp_path / "dpo.json").read_text())
    assert cli.parse(shlex.split(result["command"])[1:]) == ("dpo", (dataclasses.replace(config, out=""),))
    assert len(result["runs"]) == 2  # the recorded command reruns exactly this config
    assert result["runs"][0]["curve"]["eval"]["step"] == [1, 2] and "win_rate_vs_before" in result["runs"][0]
    assert result["before"]["reward_margins"] == 0.0 and result["reference_copy_bytes"] > 0


@pytest.mark.slow
def test_orpo_command_writes_results(chat_tok, small_chat_model, tmp_path, monkeypatch):
    monkeypatch.setattr(dpo, "sft_reference", lambda name=None, adapter=None: small_chat_model())
    config = dpo.ORPORunConfig(betas=[0.1], seeds=[0], train_pairs=4, test_pairs=2, max_steps=2,
                               per_device_train_batch_size=2, max_new_tokens=2, out=str(tmp_path / "orpo.json"))
    assert run_orpo(config) == 0
    result = json.loads((tmp_path / "orpo.json").read_text())
    assert cli.parse(shlex.split(result["command"])[1:]) == ("orpo", (dataclasses.replace(config, out=""),))
    assert result["lambda"] == 0.1
    assert len(result["runs"][0]["train_loss"]) == 2 and "rouge_l" in result["runs"][0]["after"]
    assert [r["sft_term"] for r in result["runs"] + result["whole_text_runs"]] == ["completion-only", "whole-text"]


@pytest.mark.slow
def test_an_interrupted_dpo_keeps_its_file_and_resumes(chat_tok, small_chat_model, tmp_path, monkeypatch):
    monkeypatch.setattr(dpo, "sft_reference", lambda name=None, adapter=None: small_chat_model())
    monkeypatch.setattr(dpo, "checkpoints_dir", lambda: tmp_path / "checkpoints")
    config = lambda **kw: dpo.DPORunConfig(betas=[0.1], seeds=[0, 1], train_pairs=4, eval_pairs=2,  # noqa: E731
                                           test_pairs=2, max_steps=2, per_device_train_batch_size=2, eval_steps=1,
                                           max_new_tokens=2, out=str(tmp_path / "dpo.json"), **kw)
    (tmp_path / "dpo.json").write_text("the committed file\n")
    trainer, calls = dpo.dpo_trainer, []

    def second_run_interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return trainer(*args, **kwargs)
    with monkeypatch.context() as m:
        m.setattr(dpo, "dpo_trainer", second_run_interrupted)
        with pytest.raises(KeyboardInterrupt, match="1 of 2 β × seed runs are kept"):
            run_dpo(config())
    assert (tmp_path / "dpo.json").read_text() == "the committed file\n"
    with pytest.raises(ValueError, match="other options"):
        run_dpo(config(lora_alpha=4.0, resume=True))
    first = json.loads((tmp_path / "checkpoints" / "runs.json").read_text())["runs"][0]
    assert run_dpo(config(resume=True)) == 0
    result = json.loads((tmp_path / "dpo.json").read_text())
    assert [(r["beta"], r["seed"]) for r in result["runs"]] == [(0.1, 0), (0.1, 1)] and result["runs"][0] == first
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize("args, says", [(["--betas", "-0.1"], "--betas must be positive"),
                                        (["--betas", "0"], "--betas must be positive"),
                                        (["--max_steps", "0"], "must be positive")])
def test_nonsense_options_are_refused_before_training(args, says, capsys):
    from course_lib.cli import main

    for command in ("dpo", "orpo"):
        assert main([command, *args]) == 2
        err = capsys.readouterr().err
        assert says in err and len(err.strip().splitlines()) == 1, err


def test_plain_course_orpo_reproduces_the_lessons_file():
    """`course orpo` with no options is the run behind data/results/orpo.json (lesson 07)."""
    from dataclasses import asdict

    from course_lib.results import RESULTS, load_results

    recorded = load_results("orpo")["config"]
    defaults = {k: v for k, v in asdict(dpo.ORPORunConfig()).items() if k not in ("out", "resume")}
    assert {k: recorded[k] for k in defaults} == defaults
    assert RESULTS["orpo"] == "course orpo"



def test_orpo_completion_only_tokenizes_as_dpo_and_masks_the_prompt(chat_tok, small_chat_model, tmp_path):
    """TRL's ORPOTrainer trains its SFT term on the whole text with a second <|im_end|>; our arm does not."""
    from trl.experimental.orpo import ORPOTrainer

    pairs = dpo.preference_rows("train", 4)
    ours = dpo.pair_batch(chat_tok, pairs)
    config = dpo.DPORunConfig(max_steps=1, per_device_train_batch_size=4)
    for term in dpo.ORPO_SFT_TERMS:
        torch.manual_seed(0)
        trainer = dpo.orpo_trainer(small_chat_model(), chat_tok, pairs, config, str(tmp_path / term), sft_term=term)
        batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(pairs))])
        cat = ORPOTrainer.concatenated_inputs(batch, padding_value=trainer.padding_value)
        width = ours["input_ids"].shape[1]
        ids, labels = cat["concatenated_input_ids"], cat["concatenated_labels"]
        if term == "completion-only":  # the same tokens as DPO's batch, and labels only on the completion
            assert torch.equal(ids[:, :width], ours["input_ids"]) and ids.shape[1] == width
            assert torch.equal(labels != -100, ours["completion_mask"].bool())
            with torch.no_grad():
                out = trainer.concatenated_forward(trainer.model, batch)
                logits = trainer.model(input_ids=ids, attention_mask=cat["concatenated_attention_mask"]).logits
            n = len(pairs)
            mask = ours["completion_mask"][:n, 1:].bool()
            tok = torch.gather(logits[:n, :-1].log_softmax(-1), 2, ids[:n, 1:].unsqueeze(-1)).squeeze(-1)
            assert abs(out[4].item() - (-tok[mask].mean().item())) < 1e-4  # the SFT term: reply tokens only
        else:  # TRL's default appends a second <|im_end|> to every sequence
            lengths = cat["concatenated_attention_mask"].sum(1)
            assert torch.equal(lengths, ours["attention_mask"].sum(1) + 1)
            assert all(ids[i, lengths[i] - 1] == ids[i, lengths[i] - 3] == chat_tok.eos_token_id for i in range(len(ids)))
