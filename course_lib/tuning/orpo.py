"""ORPO (Hong et al. 2024) beside DPO, on the same pairs, tokens and loss mask (lesson 07).

TRL 1.16 ships ORPO as `trl.experimental.orpo.ORPOTrainer`. As shipped, its SFT term is the NLL "over the
full prompt and response" (its own comment in `concatenated_forward`: labels are the input ids with only
padding masked), and its `add_eos_token_if_needed` appends a second <|im_end|> after the chat template's
"<|im_end|>\\n". `orpo_trainer(..., sft_term="completion-only")` (the default here) drops that token, so the
batches are DPO's (`dpo.pair_batch`) token for token, and takes the SFT term over the completion tokens only,
as lesson 06 trains; `sft_term="whole-text"` is TRL's default. The odds-ratio term is TRL's in both, on
length-normalised log-probabilities.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Sequence

import torch.nn.functional as F

from course_lib.data.preferences import to_trl
from course_lib.tuning.dpo import DPORunConfig

__all__ = ["ORPO_SFT_TERMS", "orpo_trainer"]

ORPO_SFT_TERMS = ("completion-only", "whole-text")


def orpo_trainer(model, tokenizer, train: Sequence[dict], config: DPORunConfig, output_dir: str, seed: int = 0,
                 sft_term: str = "completion-only"):
    """TRL's experimental ORPOTrainer with a fresh LoRA adapter; `config.beta` is ORPO's λ (TRL's ORPOConfig.beta)."""
    from datasets import Dataset
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    if sft_term not in ORPO_SFT_TERMS:
        raise ValueError(f"sft_term must be one of {ORPO_SFT_TERMS}, got {sft_term!r}")

    class CompletionOnlyORPOTrainer(ORPOTrainer):
        def tokenize_row(self, feature, model=None):
            row = super().tokenize_row(feature, model)
            eos = self.processing_class.eos_token_id
            for side in ("chosen", "rejected"):
                ids = row[f"{side}_input_ids"]
                if len(ids) >= 3 and ids[-1] == eos and ids[-3] == eos:  # "<|im_end|>\n" + the appended <|im_end|>
                    for key in ("input_ids", "attention_mask", "labels"):
                        row[f"{side}_{key}"] = row[f"{side}_{key}"][:-1]
            return row

        def concatenated_forward(self, model, batch):
            out = super().concatenated_forward(model, batch)  # (chosen_logps, rejected_logps, chosen_logits, ...)
            labels = self.concatenated_inputs(batch, is_encoder_decoder=False, padding_value=self.padding_value,
                                              device=self.accelerator.device)["concatenated_labels"]
            chosen_logits = out[2]  # (B, T-1, V): position t predicts token t+1
            nll = F.cross_entropy(chosen_logits.flatten(0, 1), labels[: len(chosen_logits), 1:].flatten(),
                                  ignore_index=-100)  # the prompt's labels are -100: completion tokens only
            return (*out[:4], nll, *out[5:])

    cls = CompletionOnlyORPOTrainer if sft_term == "completion-only" else ORPOTrainer
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the experimental-API notice
        dpo_args = vars(replace(config, loss="dpo").to_dpo_config(output_dir, seed))  # the shared settings
        args = ORPOConfig(**{k: v for k, v in dpo_args.items()
                             if k in ORPOConfig.__dataclass_fields__ and k not in ("loss_type", "loss_weights")})
        return cls(model=model, args=args, processing_class=tokenizer,
                   train_dataset=Dataset.from_list([to_trl(p) for p in train]), peft_config=config.lora_config())
