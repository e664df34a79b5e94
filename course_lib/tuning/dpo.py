"""Preference tuning with DPO: the DPO loss by hand (= TRL's `DPOTrainer`), held-out pair metrics (lesson 07).

`dpo_loss` is Rafailov et al. (2023), eq. 7, written out; tests/test_dpo.py proves it, and the logged
rewards, equal to TRL's `DPOTrainer` on the same batch. `dpo_trainer` is TRL's trainer with a fresh LoRA
adapter on lesson 06's model (`sft_reference`): the reference is the same network with the adapter
disabled. `LOSSES` names the objectives lesson 07 compares through TRL's `loss_type`: DPO, DPO plus an
SFT term on the chosen answers, IPO. The pairs come from course_lib.tuning.pairs (on-policy) or
course_lib.data.preferences (the course's first, hand-made pairs); the runs from course_lib.tuning.dpo_runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F

from course_lib.data.preferences import to_trl
from course_lib.models.loading import load_base_model
from course_lib.notebook import known_notices
from course_lib.results import require_adapter
from course_lib.tuning import sft

__all__ = ["LOSSES", "pair_batch", "sequence_logps", "DPOLoss", "dpo_loss", "logged_rewards", "token_kl",
           "reference_logps", "pair_accuracy", "evaluate_pairs", "sft_reference", "DPORunConfig", "dpo_trainer"]

# lesson 07's objectives -> TRL's DPOConfig (loss_type, loss_weights)
LOSSES = {"dpo": (["sigmoid"], None),  # Rafailov et al. 2023, eq. 7
          "dpo+sft": (["sigmoid", "sft"], [1.0, 1.0]),  # plus the mean NLL of the chosen answers' tokens (Pang et al. 2024)
          "ipo": (["ipo"], None)}  # Azar et al. 2023: (per-token log-ratio margin − 1/(2β))², β = τ


# ---------------------------------------------------------------- log-probabilities and the loss

def pair_batch(tokenizer, pairs: Sequence[dict]) -> dict[str, torch.Tensor]:
    """(2B, T) input_ids, attention_mask, completion_mask: B chosen sequences, then B rejected, right-padded.

    The completion is what follows the prompt rendered with its generation prompt: the reply, its
    <|im_end|> and newline. The layout is TRL's `DataCollatorForPreference`'s.
    """
    seqs, masks = [], []
    for side in ("chosen", "rejected"):
        for p in pairs:
            t = to_trl(p)
            prompt = tokenizer.apply_chat_template(t["prompt"], tokenize=True, return_dict=True,
                                                   add_generation_prompt=True)["input_ids"]
            full = tokenizer.apply_chat_template(t["prompt"] + t[side], tokenize=True, return_dict=True)["input_ids"]
            seqs.append(full)
            masks.append([0] * len(prompt) + [1] * (len(full) - len(prompt)))
    width = max(map(len, seqs))
    batch = {"input_ids": torch.full((len(seqs), width), tokenizer.pad_token_id),
             "attention_mask": torch.zeros((len(seqs), width), dtype=torch.long),
             "completion_mask": torch.zeros((len(seqs), width), dtype=torch.long)}
    for i, (s, m) in enumerate(zip(seqs, masks)):
        batch["input_ids"][i, :len(s)] = torch.tensor(s)
        batch["attention_mask"][i, :len(s)] = 1
        batch["completion_mask"][i, :len(s)] = torch.tensor(m)
    return batch


def _token_logps(logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """(2B, T-1) log-probability of each next token, 0 outside the completion."""
    targets = batch["input_ids"][:, 1:]  # token t is predicted at position t-1
    tok = torch.gather(logits[:, :-1].float().log_softmax(-1), 2, targets.unsqueeze(-1)).squeeze(-1)
    return tok * batch["completion_mask"][:, 1:]


def sequence_logps(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """(2B,) log π(y | x): the sum of the completion tokens' log-probabilities, prompt and padding excluded."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return _token_logps(logits, batch).sum(dim=1)


class DPOLoss(NamedTuple):
    """The mean DPO loss and the per-pair implicit rewards β·log(π/π_ref) of chosen and rejected."""

    loss: torch.Tensor
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float) -> DPOLoss:
    """−log σ(β[(log π(y_w) − log π_ref(y_w)) − (log π(y_l) − log π_ref(y_l))]), averaged over pairs (lesson 07)."""
    chosen_logratio = policy_chosen - ref_chosen  # (B,) how much more likely the policy makes y_w
    rejected_logratio = policy_rejected - ref_rejected
    loss = -F.logsigmoid(beta * (chosen_logratio - rejected_logratio)).mean()
    return DPOLoss(loss, beta * chosen_logratio.detach(), beta * rejected_logratio.detach())


def logged_rewards(out: DPOLoss) -> dict[str, float]:
    """What TRL logs from one batch: rewards/chosen, rewards/rejected, rewards/margins, rewards/accuracies."""
    margins = out.chosen_rewards - out.rejected_rewards
    return {"rewards/chosen": out.chosen_rewards.mean().item(), "rewards/rejected": out.rejected_rewards.mean().item(),
            "rewards/margins": margins.mean().item(),
            "rewards/accuracies": (out.chosen_rewards > out.rejected_rewards).float().mean().item()}


def token_kl(policy_logits: torch.Tensor, ref_logits: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean KL(π ‖ π_ref) of the next-token distributions over the masked positions (nats per token)."""
    logp, logq = policy_logits.float().log_softmax(-1), ref_logits.float().log_softmax(-1)
    kl = (logp.exp() * (logp - logq)).sum(-1)  # (B, T)
    return ((kl * mask).sum() / mask.sum()).item()


# ---------------------------------------------------------------- measuring a model on held-out pairs

@torch.no_grad()
def _logps_and_lengths(model, tokenizer, pairs: Sequence[dict], batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(2, B) summed completion log-probabilities (row 0 chosen, row 1 rejected) and (2, B) completion lengths."""
    was_training = model.training
    model.eval()
    logps, lengths = [], []
    for i in range(0, len(pairs), batch_size):
        b = pair_batch(tokenizer, pairs[i:i + batch_size])
        logps.append(sequence_logps(model, b).view(2, -1))
        lengths.append(b["completion_mask"].sum(1).view(2, -1))
    model.train(was_training)
    return torch.cat(logps, 1), torch.cat(lengths, 1).float()


def reference_logps(model, tokenizer, pairs: Sequence[dict], batch_size: int = 8) -> tuple[list[float], list[float]]:
    """log π_ref of every pair's chosen and rejected completion: what TRL's `precompute_ref_log_probs` stores."""
    logps, _ = _logps_and_lengths(model, tokenizer, pairs, batch_size)
    return logps[0].tolist(), logps[1].tolist()


def pair_accuracy(model, tokenizer, pairs: Sequence[dict], batch_size: int = 8) -> dict:
    """Share of pairs where the model gives the chosen answer the higher log-probability: summed over its tokens
    (`accuracy`, what DPO's loss sees) and per token (`accuracy_per_token`, blind to length)."""
    if not pairs:
        return {"accuracy": None, "accuracy_per_token": None, "logp_margin": None, "chosen_longer": None, "pairs": 0}
    logps, lengths = _logps_and_lengths(model, tokenizer, pairs, batch_size)
    per_token = logps / lengths
    return {"accuracy": (logps[0] > logps[1]).float().mean().item(),
            "accuracy_per_token": (per_token[0] > per_token[1]).float().mean().item(),
            "logp_margin": (logps[0] - logps[1]).mean().item(),
            "chosen_longer": (lengths[0] > lengths[1]).float().mean().item(), "pairs": len(pairs)}


@torch.no_grad()
def evaluate_pairs(model, tokenizer, pairs: Sequence[dict], beta: float, batch_size: int = 8) -> dict:
    """Held-out preference metrics of a peft model against itself with the adapter disabled (the reference).

    accuracy / accuracy_per_token: as `pair_accuracy`; reward_*: DPO's implicit rewards at this β (0 before
    training); chosen_logratio / rejected_logratio: mean log π/π_ref in nats (a negative chosen log-ratio is
    likelihood displacement); kl: mean per-token KL(π ‖ π_ref) on the chosen completions' positions.
    """
    was_training = model.training
    model.eval()
    pol, ref, lengths, kls = [], [], [], []
    for i in range(0, len(pairs), batch_size):
        b = pair_batch(tokenizer, pairs[i:i + batch_size])
        inputs = {"input_ids": b["input_ids"], "attention_mask": b["attention_mask"]}
        logits = model(**inputs).logits
        with model.disable_adapter():
            ref_logits = model(**inputs).logits
        pol.append(_token_logps(logits, b).sum(1).view(2, -1))  # (2, b): chosen row, rejected row
        ref.append(_token_logps(ref_logits, b).sum(1).view(2, -1))
        lengths.append(b["completion_mask"].sum(1).view(2, -1))
        n = b["input_ids"].shape[0] // 2
        kls.append((token_kl(logits[:n, :-1], ref_logits[:n, :-1], b["completion_mask"][:n, 1:]),
                    int(b["completion_mask"][:n].sum())))
    model.train(was_training)
    pol, ref, lengths = torch.cat(pol, 1), torch.cat(ref, 1), torch.cat(lengths, 1).float()
    out = dpo_loss(pol[0], pol[1], ref[0], ref[1], beta)
    per_token = pol / lengths
    return {"accuracy": (pol[0] > pol[1]).float().mean().item(),
            "accuracy_per_token": (per_token[0] > per_token[1]).float().mean().item(),
            "logp_margin": (pol[0] - pol[1]).mean().item(), "loss": out.loss.item(),
            **{k.replace("rewards/", "reward_"): v for k, v in logged_rewards(out).items()},
            "chosen_logp": pol[0].mean().item(), "rejected_logp": pol[1].mean().item(),
            "chosen_logratio": (pol[0] - ref[0]).mean().item(), "rejected_logratio": (pol[1] - ref[1]).mean().item(),
            "kl": sum(k * n for k, n in kls) / sum(n for _, n in kls)}


# ---------------------------------------------------------------- training with TRL

def sft_reference(model_name: str | None = None, adapter: Path | str | None = None):
    """Lesson 06's model: the base with its SFT adapter merged in (float32, exact) — DPO's starting point."""
    from peft import PeftModel

    adapter = adapter or require_adapter("sft-docstring")  # missing or cut: one sentence, before the model loads
    base = load_base_model(model_name or sft.lesson_model())
    return PeftModel.from_pretrained(base, str(adapter)).merge_and_unload().eval()


@dataclass
class DPORunConfig:
    """One preference-tuning run; names as in TRL's DPOConfig and peft's LoraConfig."""

    loss: str = field(default="dpo", metadata={"help": f"objective: one of {', '.join(LOSSES)} (TRL's loss_type)"})
    beta: float = field(default=0.1, metadata={"help": "β of DPO (TRL's default), τ of IPO"})
    learning_rate: float = field(default=5e-4, metadata={"help": "constant LR"})
    max_steps: int = field(default=32, metadata={"help": "optimizer steps per run"})
    per_device_train_batch_size: int = field(default=2, metadata={"help": "pairs per step"})
    r: int = field(default=4, metadata={"help": "LoRA rank (as lesson 06)"})
    lora_alpha: float = field(default=8.0, metadata={"help": "LoRA scaling alpha / r = 2"})

    def to_dpo_config(self, output_dir: str, seed: int, **overrides):
        """TRL's DPOConfig for one run."""
        from trl import DPOConfig

        loss_type, loss_weights = LOSSES[self.loss]
        kwargs = dict(output_dir=output_dir, beta=self.beta, seed=seed, learning_rate=self.learning_rate,
                      loss_type=list(loss_type), loss_weights=loss_weights, max_steps=self.max_steps,
                      per_device_train_batch_size=self.per_device_train_batch_size, per_device_eval_batch_size=8,
                      lr_scheduler_type="constant", logging_steps=1, eval_strategy="no", save_strategy="no",
                      bf16=False, activation_checkpointing=False, report_to="none", disable_tqdm=True,
                      use_cpu=not torch.cuda.is_available())
        return DPOConfig(**{**kwargs, **overrides})

    def lora_config(self):
        from peft import LoraConfig

        return LoraConfig(r=self.r, lora_alpha=self.lora_alpha, lora_dropout=0.0, target_modules="all-linear",
                          task_type="CAUSAL_LM")


def dpo_trainer(model, tokenizer, train: Sequence[dict], evals: Sequence[dict], config: DPORunConfig,
                output_dir: str, seed: int = 0, reference: tuple[Sequence[float], Sequence[float]] | None = None,
                **overrides):
    """TRL's DPOTrainer with a fresh LoRA adapter; ref_model=None, so the reference is the adapter disabled.

    `reference`: the training pairs' log π_ref (chosen, rejected), from `reference_logps`, given to TRL as its
    precomputed reference (`precompute_ref_log_probs`): runs on the same pairs share one reference pass.
    """
    from datasets import Dataset
    from trl import DPOTrainer

    rows = [to_trl(p) for p in train]
    if reference is not None:
        rows = [{**r, "ref_chosen_logps": c, "ref_rejected_logps": j} for r, c, j in zip(rows, *reference, strict=True)]
        overrides = {"precompute_ref_log_probs": True, **overrides}

    class SharedReferenceDPOTrainer(DPOTrainer):
        def _precompute_ref_logps(self, dataset, name, batch_size):
            if "ref_chosen_logps" in dataset.column_names:  # given: the reference pass is already done
                return dataset
            return super()._precompute_ref_logps(dataset, name, batch_size)

    args = config.to_dpo_config(output_dir, seed, **overrides)
    with known_notices():  # TRL still asks the model the deprecated `is_gradient_checkpointing`
        return SharedReferenceDPOTrainer(
            model=model, ref_model=None, args=args, processing_class=tokenizer, train_dataset=Dataset.from_list(rows),
            eval_dataset=Dataset.from_list([to_trl(p) for p in evals]) if evals else None,
            peft_config=config.lora_config())
