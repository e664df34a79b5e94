"""Tuning a pretrained model (lessons 03, 06, 07, 09): LoRA, supervised fine-tuning, preference tuning.

    lora         LoRA from scratch (= peft)
    sft          chat prompt formats, the assistant-only label mask (= TRL), the run behind `course sft`
    packing      padded vs TRL's padding-free batches: the same losses, fewer positions
    dpo          the DPO loss and rewards by hand (= TRL's DPOTrainer), held-out pair metrics, DPO / DPO+SFT / IPO
    orpo         ORPO with DPO's tokens and completion-only SFT term (TRL's experimental ORPOTrainer)
    pairs        on-policy pairs scored by the docstring rule, win rates with their uncertainty, `course dpo-pairs`
    judge        the local model as an LLM judge, asked in both orders, `course judge`
    dpo_runs     the runs behind `course dpo-sweep`, `course dpo`, `course dpo-variants`
    methods      lesson 11: ten fine-tuning methods through peft, their parameter counts by hand, one loop
    prompting    lesson 11: zero-/few-shot chat rows, BM25 retrieval of examples (bm25s)
    grpo         lesson 09: verifiable rewards, group-relative advantages and the GRPO loss by hand (= TRL's
                 GRPOTrainer), the run behind `course grpo`

`pairs` (lesson 07) and `grpo` (lesson 09) each have a `greedy_answers` and a `sample_answers`, with different
arguments (prompt strings vs task rows): neither is exported here; call them through their module
(`pairs.greedy_answers`, `grpo.sample_answers`).
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
from course_lib.tuning.dpo import (LOSSES, pair_batch, sequence_logps, DPOLoss, dpo_loss, logged_rewards, token_kl,
                                   reference_logps, pair_accuracy, evaluate_pairs, sft_reference, DPORunConfig,
                                   dpo_trainer)
from course_lib.tuning.orpo import ORPO_SFT_TERMS, orpo_trainer
from course_lib.tuning.pairs import (PAIR_FIELDS, SAMPLE_FIELDS, parameters_of, names_covered, score_parts,
                                     docstring_score, on_policy_pair, outcomes, win_rate, PairsConfig, pairs_dir,
                                     on_policy_rows, sample_rows, split_rows, pairs_run, write_pairs_card)
from course_lib.tuning.judge import (JUDGE_QUESTION, judge_prompt, verdict_tokens, judge_pairs, judge_summary,
                                     JudgeConfig, judge_run)
from course_lib.tuning.dpo_runs import (ARMS, RunsConfig, SweepConfig, SeedsConfig, VariantsConfig, train_arm,
                                        evaluate_model, run_arms, sweep_run, seeds_run, variants_run, best_learning_rate)
from course_lib.tuning.grpo import (final_number, checked_reward, contains_reward, lenient_reward, REWARDS,
                                    group_advantages, zero_std_fraction, zero_std_probability, completion_logps,
                                    GRPOLoss, grpo_loss, LOSS_TYPES, GRPORunConfig, grpo_trainer, log_curve)
from course_lib.tuning.methods import (METHOD_NAMES, LORA_FAMILY, PROMPT_LEARNING, NO_IMPLEMENTATION, MethodSpec,
                                       method_config, build_method, TrimVirtualTokens, VirtualTokenGreedy, trainable_parameters,
                                       lora_family_parameters, glora_parameters, ia3_parameters, virtual_token_parameters,
                                       training_batches, train_steps)
from course_lib.tuning.prompting import question, few_shot_row, Retriever, prompt_tokens

__all__ = ['LoraConfig', 'LinearWithLoRA', 'add_lora', 'merge_lora', 'unmerge_lora', 'lora_parameter_count',
           'lora_state_dict', 'ATTENTION_TARGETS', 'ALL_LINEAR_TARGETS', 'DEFAULT_MODEL', 'lesson_model',
           'TEMPLATES', 'task_rows', 'to_prompt_completion', 'prompt_for', 'generation_prompt',
           'assistant_only_labels', 'whole_text_labels', 'pad_batch', 'response_nll',
           'greedy_answers_and_cuts', 'answer_cap', 'answer_metrics', 'SFTRunConfig', 'sft_trainer', 'sft_run',
           'dir_bytes', 'write_adapter_card', 'collate', 'pad_fraction', 'example_losses', 'compare_batches',
           'LOSSES', 'pair_batch', 'sequence_logps', 'DPOLoss', 'dpo_loss', 'logged_rewards', 'token_kl',
           'reference_logps', 'pair_accuracy', 'evaluate_pairs', 'sft_reference', 'DPORunConfig',
           'dpo_trainer', 'ORPO_SFT_TERMS', 'orpo_trainer', 'PAIR_FIELDS', 'SAMPLE_FIELDS', 'parameters_of',
           'names_covered', 'score_parts', 'docstring_score',
           'on_policy_pair', 'outcomes', 'win_rate', 'PairsConfig', 'pairs_dir', 'on_policy_rows',
           'sample_rows', 'split_rows', 'pairs_run', 'write_pairs_card', 'JUDGE_QUESTION', 'judge_prompt',
           'verdict_tokens', 'judge_pairs', 'judge_summary', 'JudgeConfig', 'judge_run', 'ARMS', 'RunsConfig',
           'SweepConfig', 'SeedsConfig', 'VariantsConfig', 'train_arm', 'evaluate_model', 'run_arms',
           'sweep_run', 'seeds_run', 'variants_run', 'best_learning_rate', 'final_number',
           'checked_reward', 'contains_reward', 'lenient_reward', 'REWARDS', 'group_advantages', 'zero_std_fraction',
           'zero_std_probability', 'completion_logps', 'GRPOLoss', 'grpo_loss', 'LOSS_TYPES', 'GRPORunConfig',
           'grpo_trainer', 'log_curve', 'METHOD_NAMES', 'LORA_FAMILY',
           'PROMPT_LEARNING', 'NO_IMPLEMENTATION', 'MethodSpec', 'method_config', 'build_method',
           'TrimVirtualTokens', 'VirtualTokenGreedy', 'trainable_parameters', 'lora_family_parameters', 'glora_parameters', 'ia3_parameters',
           'virtual_token_parameters', 'training_batches', 'train_steps', 'question', 'few_shot_row', 'Retriever',
           'prompt_tokens']
