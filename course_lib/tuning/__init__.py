"""Tuning a pretrained model (lessons 03, 06, 07, 09): LoRA, supervised fine-tuning, preference tuning.

    lora         LoRA from scratch (= peft)
    sft          chat prompt formats, the assistant-only label mask (= TRL), the run behind `course sft`
    packing      padded vs TRL's padding-free batches: the same losses, fewer positions
    dpo          the DPO loss and rewards by hand (= TRL's DPOTrainer), `course dpo`, `course orpo`
    methods      lesson 11: ten fine-tuning methods through peft, their parameter counts by hand, one loop
    prompting    lesson 11: zero-/few-shot chat rows, BM25 retrieval of examples (bm25s)
    grpo         lesson 09: verifiable rewards, group-relative advantages and the GRPO loss by hand (= TRL's
                 GRPOTrainer), the run behind `course grpo`
"""

from course_lib.tuning.lora import (LoraConfig, LinearWithLoRA, add_lora, merge_lora, unmerge_lora,
                                    lora_parameter_count, lora_state_dict, ATTENTION_TARGETS,
                                    ALL_LINEAR_TARGETS)
from course_lib.tuning.sft import (DEFAULT_MODEL, lesson_model, TEMPLATES, task_rows, to_prompt_completion,
                                   prompt_for, generation_prompt, assistant_only_labels, whole_text_labels,
                                   pad_batch, response_nll, greedy_answers_and_cuts, answer_cap,
                                   answer_metrics, SFTRunConfig, sft_trainer, sft_run, dir_bytes,
                                   write_adapter_card)
from course_lib.tuning.packing import collate, pad_fraction, example_losses, compare_batches
from course_lib.tuning.dpo import (pair_batch, sequence_logps, DPOLoss, dpo_loss, logged_rewards, token_kl,
                                   evaluate_pairs, sft_reference, DPORunConfig, dpo_trainer, win_rate,
                                   dpo_run, ORPO_SFT_TERMS, orpo_trainer, orpo_run)
from course_lib.tuning.grpo import (final_number, checked_reward, contains_reward, lenient_reward, REWARDS,
                                    group_advantages, zero_std_fraction, zero_std_probability, completion_logps,
                                    GRPOLoss, grpo_loss, LOSS_TYPES, GRPORunConfig, grpo_trainer, log_curve,
                                    greedy_answers, sample_answers)
from course_lib.tuning.methods import (METHOD_NAMES, LORA_FAMILY, PROMPT_LEARNING, NO_IMPLEMENTATION, MethodSpec,
                                       method_config, build_method, TrimVirtualTokens, trainable_parameters,
                                       lora_family_parameters, ia3_parameters, virtual_token_parameters,
                                       training_batches, train_steps)
from course_lib.tuning.prompting import question, few_shot_row, Retriever, prompt_tokens

__all__ = ['LoraConfig', 'LinearWithLoRA', 'add_lora', 'merge_lora', 'unmerge_lora', 'lora_parameter_count',
           'lora_state_dict', 'ATTENTION_TARGETS', 'ALL_LINEAR_TARGETS', 'DEFAULT_MODEL', 'lesson_model',
           'TEMPLATES', 'task_rows', 'to_prompt_completion', 'prompt_for', 'generation_prompt',
           'assistant_only_labels', 'whole_text_labels', 'pad_batch', 'response_nll',
           'greedy_answers_and_cuts', 'answer_cap', 'answer_metrics', 'SFTRunConfig', 'sft_trainer',
           'sft_run', 'dir_bytes', 'write_adapter_card', 'collate', 'pad_fraction', 'example_losses',
           'compare_batches', 'pair_batch', 'sequence_logps', 'DPOLoss', 'dpo_loss', 'logged_rewards',
           'token_kl', 'evaluate_pairs', 'sft_reference', 'DPORunConfig', 'dpo_trainer', 'win_rate',
           'dpo_run', 'ORPO_SFT_TERMS', 'orpo_trainer', 'orpo_run', 'final_number', 'checked_reward',
           'contains_reward', 'lenient_reward', 'REWARDS', 'group_advantages', 'zero_std_fraction',
           'zero_std_probability', 'completion_logps', 'GRPOLoss', 'grpo_loss', 'LOSS_TYPES', 'GRPORunConfig',
           'grpo_trainer', 'log_curve', 'greedy_answers', 'sample_answers', 'METHOD_NAMES', 'LORA_FAMILY',
           'PROMPT_LEARNING', 'NO_IMPLEMENTATION', 'MethodSpec', 'method_config', 'build_method',
           'TrimVirtualTokens', 'trainable_parameters', 'lora_family_parameters', 'ia3_parameters',
           'virtual_token_parameters', 'training_batches', 'train_steps', 'question', 'few_shot_row', 'Retriever',
           'prompt_tokens']
