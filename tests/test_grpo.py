"""course_lib.tuning.grpo: the rewards, the advantages and the loss equal TRL's `GRPOTrainer`; `course grpo`'s file.

The tokenizer is SmolLM2-135M-Instruct's (its chat template renders the prompts); the model under it is a tiny
random Llama with the same vocabulary, so every test runs in seconds.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shlex

import pytest
import torch

from course_lib import cli
from course_lib.data.verifiable import verifiable_rows
from course_lib.experiments import grpo as experiment
from course_lib.tuning import grpo


def test_checked_reward_reads_the_final_number():
    replies = ["7 * 8 = 56", "7 * 8 = 56.\n\nThis is 8 more than 48", "56", "fifty-six", "To calculate 7 * 8, we"]
    assert grpo.checked_reward(replies, ["56"] * 5) == [1.0, 0.0, 1.0, 0.0, 0.0]
    assert grpo.checked_reward([[{"role": "assistant", "content": "9 * 6 = 54"}]], ["54"]) == [1.0]  # TRL's form
    assert grpo.final_number("no digits") is None and grpo.final_number("1, 2 and 356") == "356"


def test_flawed_rewards_accept_what_the_checked_one_refuses():
    hedge, restated = "56 or maybe 54", "To calculate 7 * 8, we need to"
    assert grpo.contains_reward([hedge], ["56"]) == [1.0] and grpo.checked_reward([hedge], ["56"]) == [0.0]
    assert grpo.lenient_reward([restated], ["56"]) == [1.0] and grpo.checked_reward([restated], ["56"]) == [0.0]
    assert grpo.lenient_reward(["12 x 4 is 48", "7 × 11", "3 + 4"], ["48", "77", "8"]) == [1.0, 1.0, 0.0]
    assert grpo.contains_reward([restated], ["56"]) == [0.0]


def test_advantages_by_formula():
    r = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    a = grpo.group_advantages(r, 4)
    std = torch.tensor([1.0, 0.0, 0.0, 0.0]).std()  # sample std (n − 1) of the first group: 0.5
    assert a[0].item() == pytest.approx(0.75 / (std.item() + 1e-4)) and a[1].item() == pytest.approx(-0.25 / (0.5 + 1e-4))
    assert a[4:].abs().max().item() == 0.0  # every completion right: nothing to learn
    assert grpo.group_advantages(r, 4, "none")[:4].tolist() == [0.75, -0.25, -0.25, -0.25]
    assert grpo.zero_std_fraction(r, 4) == 0.5 and grpo.zero_std_fraction(r, 2) == 0.75
    assert grpo.zero_std_probability(0.5, 2) == 0.5 and grpo.zero_std_probability(1.0, 8) == 1.0
    with pytest.raises(ValueError):
        grpo.group_advantages(r, 4, "std")


def test_loss_types_weigh_short_and_long_completions_differently():
    mask = torch.tensor([[1.0, 1.0, 0, 0, 0, 0, 0, 0], [1.0] * 8])  # a 2-token and an 8-token completion
    logps = torch.zeros(2, 8, requires_grad=True)
    adv = torch.tensor([1.0, 1.0])
    grads = {}
    for loss_type in ("grpo", "dapo", "dr_grpo"):
        out = grpo.grpo_loss(logps, logps.detach(), adv, mask, loss_type=loss_type, max_completion_length=8)
        grads[loss_type] = torch.autograd.grad(out.loss, logps)[0]
    assert grads["grpo"][0, 0].item() == pytest.approx(-1 / (2 * 2)) and grads["grpo"][1, 0].item() == pytest.approx(-1 / (2 * 8))
    assert grads["dapo"][0, 0].item() == pytest.approx(grads["dapo"][1, 0].item()) == pytest.approx(-1 / 10)
    assert grads["dr_grpo"][0, 0].item() == pytest.approx(-1 / 16)


def _trainer(chat_tok, small_chat_model, tmp_path, **overrides):
    config = grpo.GRPORunConfig(max_steps=1, max_completion_length=6, temperature=1.0)
    return grpo.grpo_trainer(small_chat_model(), chat_tok, verifiable_rows("times-table", "train", 4), config,
                             str(tmp_path), monitor=["lenient"], **overrides)


def even_length_reward(completions, answer, **kwargs) -> list[float]:
    """A reward that varies on a random model (whose replies the checked reward scores all 0): 1.0 for a reply of
    an even number of characters."""
    return [float(len(grpo.reply_text(c)) % 2 == 0) for c in completions]


def _batch_after_a_step(trainer):
    """TRL's own generated and scored batch, after one optimizer step from an adapter that is not zero (LoRA's B
    set at random), so that the policy differs from the reference (the adapter off)."""
    with torch.no_grad():
        for name, p in trainer.model.named_parameters():
            if "lora_B" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=torch.Generator().manual_seed(2)))
    trainer.train()
    batch = trainer._generate_and_score_completions([trainer.train_dataset[i] for i in range(4) for _ in range(2)][:8])
    return batch


@pytest.mark.parametrize("loss_type,beta,scale", [("dapo", 0.0, "group"), ("grpo", 0.04, "group"),
                                                  ("dr_grpo", 0.0, "none"), ("bnpo", 0.1, "batch"),
                                                  ("grpo", 1.0, "group")])
def test_loss_and_advantages_equal_trl(chat_tok, small_chat_model, tmp_path, monkeypatch, loss_type, beta, scale):
    torch.manual_seed(0)
    monkeypatch.setitem(grpo.REWARDS, "even_length", even_length_reward)
    trainer = _trainer(chat_tok, small_chat_model, tmp_path, reward="even_length", loss_type=loss_type, beta=beta,
                       scale_rewards=scale, learning_rate=0.05)
    inputs = _batch_after_a_step(trainer)
    g, n = trainer.num_generations, len(inputs["advantages"])
    rewards = torch.tensor(list(trainer._logs["rewards"]["even_length_reward"])[-n:])
    assert rewards.std().item() > 0 and trainer._metrics["train"]["reward_std"][-1] > 0  # a signal to check
    mine_adv = grpo.group_advantages(rewards, g, scale)
    assert mine_adv.abs().max().item() > 0.1 and (mine_adv - inputs["advantages"]).abs().max().item() < 1e-6
    # a made-up advantage and an older policy, so that every term (clipping included) is exercised
    inputs["advantages"] = torch.tensor([1.5, -0.5, 0.8, -1.2, 0.3, -2.0, 1.1, 0.0])[:n]
    model = trainer.model
    with torch.no_grad():
        old = grpo.completion_logps(model, inputs, trainer.temperature)
        inputs["old_per_token_logps"] = old + 0.3 * torch.randn(old.shape, generator=torch.Generator().manual_seed(1))
        if beta:
            with model.disable_adapter():  # TRL's reference with LoRA: the adapter off
                inputs["ref_per_token_logps"] = grpo.completion_logps(model, inputs, trainer.temperature)
        assert trainer.args.use_bias_correction_kl  # trl 1.16's default: the KL term weighted by the ratio
        theirs = trainer.compute_loss(model, inputs).item()
        logps = grpo.completion_logps(model, inputs, trainer.temperature)
        mine, paper = (grpo.grpo_loss(logps, inputs["old_per_token_logps"], inputs["advantages"],
                                      inputs["completion_mask"], loss_type=loss_type, epsilon=trainer.args.epsilon,
                                      beta=beta, ref_logps=inputs.get("ref_per_token_logps"),
                                      max_completion_length=trainer.args.max_completion_length,
                                      num_items=inputs["num_items_in_batch"].item(), bias_correction_kl=corrected)
                       for corrected in (True, False))
    assert abs(mine.loss.item() - theirs) < 1e-5
    assert mine.clip_ratio == pytest.approx(trainer._metrics["train"]["clip_ratio/region_mean"][-1], abs=1e-6)
    assert 0 < mine.clip_ratio < 1 and abs(theirs) > 1e-3
    if beta:
        m = inputs["completion_mask"]
        mean_kl = (mine.per_token_kl * m).sum().item() / m.sum().item()
        assert mean_kl > 1e-3 and mean_kl == pytest.approx(trainer._metrics["train"]["kl"][-1], rel=1e-4)
        gap, err = abs(paper.loss.item() - theirs), abs(mine.loss.item() - theirs)
        assert gap > max(1e-6, 10 * err)  # the check tells the paper's β·KL from TRL's β·ρ·KL


def test_trainer_logs_generation_time_and_samples(chat_tok, small_chat_model, tmp_path):
    trainer = _trainer(chat_tok, small_chat_model, tmp_path)
    assert trainer.ref_model is None and trainer.beta == 0.0  # TRL's default: no reference at all
    trainer.train()
    curve = grpo.log_curve(trainer.state.log_history)
    assert curve["step"] == [1] and curve["generation_time"][0] > 0
    assert curve["step_time"][0] >= curve["generation_time"][0]
    assert curve["rewards/lenient_reward/mean"][0] is not None  # monitored with weight 0
    assert len(trainer.samples) == 1 and len(trainer.samples[0]["completions"]) == 8


def test_interval_and_group_sizes():
    mean, half = experiment.interval95([0.1, 0.2, 0.3])
    assert mean == pytest.approx(0.2) and half == pytest.approx(4.303 * 0.1 / math.sqrt(3))
    z = experiment.zero_std_by_group_size([[1, 1, 0, 0], [0, 0, 0, 0]], sizes=(2, 4))
    assert z == {2: 1.0, 4: 0.5}


@pytest.mark.slow
def test_grpo_command_writes_results(chat_tok, small_chat_model, tmp_path, monkeypatch):
    monkeypatch.setattr(experiment, "load_base_model", lambda name=None: small_chat_model())
    out = tmp_path / "grpo.json"
    config = experiment.GRPOExperimentConfig(max_steps=2, seeds=[0, 1], test_rows=4, validation_rows=2,
                                             group_prompts=2, sweep_lrs=[1e-3], sweep_steps=1, rs_lrs=[1e-3],
                                             max_completion_length=4, out=str(out),
                                             parts=["base_rates", "groups", "sweep", "grpo", "hack", "rs_sft"])
    assert experiment.run_grpo(config) == 0
    result = json.loads(out.read_text())
    assert cli.parse(shlex.split(result["command"])[1:])[0] == "grpo"
    parsed = cli.parse(shlex.split(result["command"])[1:])[1][0]
    assert dataclasses.replace(parsed, parts=config.parts, out=str(out)) == config
    assert len(result["grpo"]["runs"]) == 2 and len(result["rs_sft"]["runs"]) == 2
    assert set(result["groups"]["zero_std"]) == {"2", "4", "8", "16"}
    assert result["hack"]["reward"] == "lenient" and len(result["hack"]["curve"]["step"]) == 2
    assert set(result["part_seconds"]) == set(config.parts)
    first = result["grpo"]["runs"][0]["samples"][0]
    assert len(first["completions"]) == 8 and set(first["rewards"]) == {"checked_reward", "contains_reward",
                                                                       "lenient_reward"}
    config = dataclasses.replace(config, parts=["grpo"], resume=True)  # kept, not run again
    before = out.read_text()
    assert experiment.run_grpo(config) == 0 and json.loads(out.read_text())["grpo"] == json.loads(before)["grpo"]
