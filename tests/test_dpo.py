"""course_lib.tuning.dpo and .orpo: the batch and the DPO loss and rewards equal TRL's `DPOTrainer`; ORPO's arms.

The tokenizer is SmolLM2-135M-Instruct's (its ChatML template renders the pairs); the model under it
is a tiny random Llama with the same vocabulary, so every test runs in seconds.
"""

from __future__ import annotations

import math

import pytest
import torch

from course_lib.data.preferences import preference_rows
from course_lib.tuning import dpo, orpo


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
    pairs = preference_rows("train", 6)
    config = dpo.DPORunConfig(beta=beta, max_steps=1, per_device_train_batch_size=6)
    trainer = dpo.dpo_trainer(small_chat_model(), chat_tok, pairs, [], config, str(tmp_path))
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
    pairs = preference_rows("test", 5)
    m = dpo.evaluate_pairs(model, chat_tok, pairs, beta=0.1, batch_size=2)
    assert m["reward_margins"] == 0.0 and m["kl"] == pytest.approx(0.0, abs=1e-7)
    assert m["chosen_logratio"] == 0.0 and m["rejected_logratio"] == 0.0
    assert m["loss"] == pytest.approx(math.log(2)) and 0 <= m["accuracy"] <= 1
    plain = dpo.pair_accuracy(model, chat_tok, pairs, batch_size=3)  # no adapter needed: the same numbers
    assert plain["accuracy"] == m["accuracy"] and plain["accuracy_per_token"] == m["accuracy_per_token"]
    assert plain["logp_margin"] == pytest.approx(m["logp_margin"], abs=1e-4)


def test_token_kl_is_zero_for_equal_and_positive_otherwise():
    a = torch.randn(2, 3, 7, generator=torch.Generator().manual_seed(0))
    mask = torch.ones(2, 3)
    assert dpo.token_kl(a, a, mask) == pytest.approx(0.0, abs=1e-7)
    assert dpo.token_kl(a, a.flip(-1), mask) > 0


def test_orpo_completion_only_tokenizes_as_dpo_and_masks_the_prompt(chat_tok, small_chat_model, tmp_path):
    """TRL's ORPOTrainer trains its SFT term on the whole text with a second <|im_end|>; our arm does not."""
    from trl.experimental.orpo import ORPOTrainer

    pairs = preference_rows("train", 4)
    ours = dpo.pair_batch(chat_tok, pairs)
    config = dpo.DPORunConfig(max_steps=1, per_device_train_batch_size=4)
    for term in orpo.ORPO_SFT_TERMS:
        torch.manual_seed(0)
        trainer = orpo.orpo_trainer(small_chat_model(), chat_tok, pairs, config, str(tmp_path / term), sft_term=term)
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


@pytest.mark.parametrize("loss", ["dpo+sft", "ipo"])
def test_the_other_objectives_are_trls_loss_types(chat_tok, small_chat_model, tmp_path, loss):
    """DPO + SFT adds the chosen completions' mean token NLL to DPO's loss; IPO regresses the per-token margin."""
    pairs = preference_rows("train", 4)
    config = dpo.DPORunConfig(loss=loss, beta=0.5, max_steps=1, per_device_train_batch_size=4)
    trainer = dpo.dpo_trainer(small_chat_model(), chat_tok, pairs, [], config, str(tmp_path))
    assert trainer.args.loss_type == dpo.LOSSES[loss][0]
    _trained_looking(trainer)
    model = trainer.model.eval()
    batch = dpo.pair_batch(chat_tok, pairs)
    with torch.no_grad():
        theirs = trainer.compute_loss(model, trainer.data_collator([trainer.train_dataset[i] for i in range(4)])).item()
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        with model.disable_adapter():
            ref = dpo.sequence_logps(model, batch)
    targets = batch["input_ids"][:, 1:]
    tok = torch.gather(logits[:, :-1].log_softmax(-1), 2, targets.unsqueeze(-1)).squeeze(-1)
    mask = batch["completion_mask"][:, 1:].float()
    pol = (tok * mask).sum(1)
    n = len(pairs)
    if loss == "dpo+sft":
        nll = -(tok[:n] * mask[:n]).sum() / mask[:n].sum()
        ours = dpo.dpo_loss(pol[:n], pol[n:], ref[:n], ref[n:], 0.5).loss + nll
    else:  # TRL divides each log-ratio by its completion length (its comment: confirmed with IPO's authors)
        ratio = (pol - ref) / mask.sum(1)
        ours = ((ratio[:n] - ratio[n:] - 1 / (2 * 0.5)) ** 2).mean()
    assert abs(ours.item() - theirs) < 1e-4


def test_a_shared_reference_is_what_trl_computes(chat_tok, small_chat_model, tmp_path):
    """`reference_logps` once, given to every run, equals TRL's own precomputed reference pass."""
    pairs = preference_rows("train", 4)
    config = dpo.DPORunConfig(max_steps=1, per_device_train_batch_size=2)
    own = dpo.dpo_trainer(small_chat_model(), chat_tok, pairs, [], config, str(tmp_path / "a"),
                          precompute_ref_log_probs=True)
    shared = dpo.reference_logps(small_chat_model(), chat_tok, pairs, batch_size=3)
    assert own.train_dataset["ref_chosen_logps"] == pytest.approx(shared[0], abs=1e-4)
    assert own.train_dataset["ref_rejected_logps"] == pytest.approx(shared[1], abs=1e-4)
    given = dpo.dpo_trainer(small_chat_model(), chat_tok, pairs, [], config, str(tmp_path / "b"), reference=shared)
    assert given.train_dataset["ref_chosen_logps"] == pytest.approx(shared[0], abs=0) and given.args.precompute_ref_log_probs
