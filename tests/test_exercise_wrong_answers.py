"""Every graded part fails a plausible wrong answer (EXERCISES.md: "the trap the lesson warns about").

Each case swaps one piece of a solution's answer (sources/solutions/NN_topic.py) for a wrong one and
expects that part's test cell — hidden tests included, as nbgrader and `course grade` run them — to
raise. One run per notebook: its code cells execute in order in one namespace (the control: the right
answers pass every test cell), and at each answer cell with wrong answers the process forks; the child
runs the wrong answer and the cells up to the part's test cell in a copy of everything the notebook has
built so far (weights, random-number state), so a wrong answer costs one part, not the notebook again.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
from pathlib import Path

import jupytext
import pytest

REPO = Path(__file__).resolve().parents[1]

# (notebook, grade_id, what the answer cell says, the wrong answer), one row per trap
WRONG = {
    # exercises 01-05: one trap per part (EXERCISES.md)
    "01_frozen_counted": ("01_transfer_learning", "q1_count_trainable", "if p.requires_grad and id(p) not in seen:",
                          "if id(p) not in seen:"),
    "01_match_not_search": ("01_transfer_learning", "q2_freeze_except", "any(re.search(pattern, name)",
                            "any(re.match(pattern, name)"),
    "01_head_bias": ("01_transfer_learning", "q3_probe_size", "answer_q3 = 128 * 6", "answer_q3 = 128 * 6 + 6"),
    "01_lora_not_fine_tuning": ("01_transfer_learning", "q4_not_fine_tuning", 'answer_q4 = "C"', 'answer_q4 = "B"'),
    "01_last_model_kept": ("01_transfer_learning", "q5_early_stopping", "load_best_model_at_end=True)",
                           "load_best_model_at_end=False)"),
    "02_sweep_off_by_one": ("02_learning_rate", "q1_exponential_sweep", "** (1 / (num_steps - 1))", "** (1 / num_steps)"),
    "02_warmup_not_subtracted": ("02_learning_rate", "q2_cosine", "progress = (t - warmup) / (total - warmup)",
                                 "progress = t / total"),
    "02_layerwise_reversed": ("02_learning_rate", "q3_layerwise", "lr / factor ** (n_groups - 1 - i)", "lr / factor ** i"),
    "02_one_division_too_many": ("02_learning_rate", "q4_embedding_ratio", "answer_q4 = 2.6 ** 5", "answer_q4 = 2.6 ** 6"),
    "02_lowest_loss_exactly": ("02_learning_rate", "q5_range_test", 'answer_q5 = "B"', 'answer_q5 = "C"'),
    "02_one_seed": ("02_learning_rate", "q6_best_lr", "key=lambda lr: statistics.mean(final[lr])",
                    "key=lambda lr: final[lr][0]"),
    "02_trainer_default_lr": ("02_learning_rate", "q7_lr_decision", "chosen_lr = float(max(scores, key=scores.get))",
                              "chosen_lr = 5e-5  # TrainingArguments' default"),
    "03_full_matrix": ("03_lora_math", "q1_lora_params", "return r * (d + k)", "return d * k"),
    "03_rslora_ignored": ("03_lora_math", "q2_scaling", "return alpha / (math.sqrt(r) if use_rslora else r)",
                          "return alpha / r"),
    "03_forward_unscaled": ("03_lora_math", "q3_forward", "x @ W.T + scaling * (x @ A.T) @ B.T", "x @ W.T + (x @ A.T) @ B.T"),
    "03_merge_unscaled": ("03_lora_math", "q4_merge", "return W + scaling * (B @ A)", "return W + B @ A"),
    "03_true_division": ("03_lora_math", "q5_budget", "attention_rank_same_budget = all_linear_r8 // (",
                         "attention_rank_same_budget = all_linear_r8 / ("),
    "03_budget_ignored": ("03_lora_math", "q6_lora_decision", "LoraConfig(r=3, lora_alpha=24.0,",
                          "LoraConfig(r=8, lora_alpha=16.0,"),
    "04_signed_max": ("04_qlora_consumer_gpu", "q1_nf4_block", "absmax = block.abs().max()", "absmax = block.max()"),
    "04_scale_forgotten": ("04_qlora_consumer_gpu", "q2_dequant", "return NF4[codes.long()] * absmax",
                           "return NF4[codes.long()]"),
    "04_second_level_blocks": ("04_qlora_consumer_gpu", "q3_bits", "32 / (blocksize * 256)", "32 / 256"),
    "04_no_master_weights": ("04_qlora_consumer_gpu", "q4_full_ft", "n_params * (2 + 2 + 4 + 4 + 4)",
                             "n_params * (2 + 2 + 4 + 4)"),
    "04_no_checkpointing": ("04_qlora_consumer_gpu", "q5_estimate", "gradient_checkpointing=True,",
                            "gradient_checkpointing=False,"),
    "04_fp32_assumed": ("04_qlora_consumer_gpu", "q6_batch_decision", 'return VramConfig(method="lora", precision="bf16",',
                        'return VramConfig(method="lora", precision="fp32",'),
    "05_ppl_difference": ("05_catastrophic_forgetting", "q1_forgetting_metric",
                          "return math.log(ppl_after) - math.log(ppl_before)", "return ppl_after - ppl_before"),
    "05_truncated_share": ("05_catastrophic_forgetting", "q2_replay_mix", "n_old = round(fraction * batch_size)",
                           "n_old = int(fraction * batch_size)"),
    "05_no_half": ("05_catastrophic_forgetting", "q3_ewc_penalty", "return lam / 2 * total", "return lam * total"),
    "05_most_forgetting_per_gain": ("05_catastrophic_forgetting", "q4_read_results",
                                    "cheapest = min(ratios, key=ratios.get)", "cheapest = max(ratios, key=ratios.get)"),
    "05_rate_too_high": ("05_catastrophic_forgetting", "q5_decide_lr_replay", "my_learning_rate = 3e-4",
                         "my_learning_rate = 1e-3"),
    # issue 26: the adapter's logits taken *after* merge_and_unload() compare the merged model with itself
    "06_merge_after": ("06_instruction_tuning", "q3_merge_check",
                       "        adapted_logits = peft_model(input_ids).logits  # before merging: merge_and_unload changes the model in place\n"
                       "        merged = peft_model.merge_and_unload()\n",
                       "        merged = peft_model.merge_and_unload()\n"
                       "        adapted_logits = peft_model(input_ids).logits\n"),
    # issue 26: an off-by-one word limit
    "06_off_by_one": ("06_instruction_tuning", "q4_scores", "0 < len(a.split()) <= 25", "0 < len(a.split()) < 25"),
    # issue 25, item 20: the untuned base model's response perplexity picks the format (it picks alpaca)
    "06_base_model_judges": ("06_instruction_tuning", "q5_choose_format",
                             "best_format = max(sft.TEMPLATES, key=lambda t: (format_rate[t], -ppl[t]))",
                             "base = load_base_model(sft.DEFAULT_MODEL).eval()\n"
                             "base_ppl = {t: math.exp(sft.response_nll(base, tokenizer, val8, t)) for t in sft.TEMPLATES}\n"
                             "best_format = min(base_ppl, key=base_ppl.get)"),
    # the remaining parts of exercises 06-08
    "06_no_system_turn": ("06_instruction_tuning", "q1_render_chatml", 'if messages[0]["role"] != "system":',
                          'if False:'),
    "06_header_trained": ("06_instruction_tuning", "q2_assistant_labels", "            inside = True\n            continue",
                          "            inside = True\n            labels[i] = tok\n            continue"),
    "08_first_step_counted": ("08_beyond_one_gpu", "q3_ddp_log", "for n, s, c in steps if int(n) > 1]",
                              "for n, s, c in steps]"),
    "08_mismatch_answer": ("08_beyond_one_gpu", "q5_mismatch", 'answer_q5 = "B"', 'answer_q5 = "A"'),
    # issue 28: an on-policy pair is the best and the worst sample, and a prompt whose samples tie gives none
    "07_rejected_is_the_last_sample": ("07_preference_tuning", "q1_on_policy_pair",
                                       '"rejected": samples[scores.index(min(scores))]}', '"rejected": samples[-1]}'),
    "07_ties_kept": ("07_preference_tuning", "q1_on_policy_pair",
                     "    if max(scores) == min(scores):\n        return None\n", ""),
    # token t is predicted at position t - 1, not t
    "07_logps_not_shifted": ("07_preference_tuning", "q2_completion_logps",
                             "    logp = logits[:, :-1].float().log_softmax(-1)\n"
                             "    token = torch.gather(logp, 2, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)\n"
                             "    return (token * completion_mask[:, 1:]).sum(1)",
                             "    logp = logits.float().log_softmax(-1)\n"
                             "    token = torch.gather(logp, 2, input_ids.unsqueeze(-1)).squeeze(-1)\n"
                             "    return (token * completion_mask).sum(1)"),
    "07_mask_not_shifted": ("07_preference_tuning", "q2_completion_logps", "(token * completion_mask[:, 1:]).sum(1)",
                            "(token * completion_mask[:, :-1]).sum(1)"),
    # the part's own warning: log(sigmoid(x)) is -inf for a large negative x
    "07_log_of_sigmoid": ("07_preference_tuning", "q3_dpo_loss", "    return -F.logsigmoid(logits).mean()",
                          "    return -torch.log(torch.sigmoid(logits)).mean()"),
    "07_reference_ignored": ("07_preference_tuning", "q3_dpo_loss",
                             "logits = beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected))",
                             "logits = beta * (policy_chosen - policy_rejected)"),
    # with ties, sqrt(p(1-p)/n) is not the standard error of the outcomes' mean
    "07_binomial_se_with_ties": ("07_preference_tuning", "q4_win_rate_error",
                                 "    se = math.sqrt(sum((x - rate) ** 2 for x in outcomes) / (n - 1)) / math.sqrt(n)",
                                 "    se = math.sqrt(rate * (1 - rate) / n)"),
    "07_se_over_n": ("07_preference_tuning", "q4_win_rate_error",
                     "    se = math.sqrt(sum((x - rate) ** 2 for x in outcomes) / (n - 1)) / math.sqrt(n)",
                     "    se = math.sqrt(sum((x - rate) ** 2 for x in outcomes) / (n - 1)) / n"),
    # issue 28 (issue 25, item 22): a noise-aware decision with real alternatives
    "07_point_estimate_not_interval": ("07_preference_tuning", "q5_ship_a_run",
                                       '    upper = {label(r): r["after"]["win_rate"]["win_rate"] + 1.96 * r["after"]["win_rate"]["se"] for r in runs}',
                                       '    upper = {label(r): r["after"]["win_rate"]["win_rate"] for r in runs}'),
    "07_no_guard": ("07_preference_tuning", "q5_ship_a_run", "    admissible = sorted(arm for arm, u in upper.items() if u >= 0.5)",
                    "    admissible = sorted(upper)"),
    "07_ship_the_least_drift": ("07_preference_tuning", "q5_ship_a_run",
                                "    best_arm = max(admissible, key=lambda arm: (names[arm], -kl[arm]))",
                                "    best_arm = min(admissible, key=kl.get)"),
    "07_tie_to_the_larger_drift": ("07_preference_tuning", "q5_ship_a_run",
                                   "    best_arm = max(admissible, key=lambda arm: (names[arm], -kl[arm]))",
                                   "    best_arm = max(admissible, key=lambda arm: (names[arm], kl[arm]))"),
    # the tie left to the sort order: right on the sweep by luck, wrong when the tied arms' drifts swap
    "07_no_tie_break": ("07_preference_tuning", "q5_ship_a_run",
                        "    best_arm = max(admissible, key=lambda arm: (names[arm], -kl[arm]))",
                        "    best_arm = max(admissible, key=names.get)"),
    # issue 26: `/` instead of `//` returns floats for every sharded stage
    "08_true_division": ("08_beyond_one_gpu", "q1_zero_by_hand", "    return 2 * n // num_gpus + 16 * n // num_gpus + 4",
                         "    return 2 * n / num_gpus + 16 * n / num_gpus + 4"),
    # issue 25, item 23: the answers are no longer in the visible tests
    "08_accumulation_per_gpu": ("08_beyond_one_gpu", "q2_global_batch", "accumulation_for_32 = 4", "accumulation_for_32 = 16"),
    "08_one_gpu_too_many": ("08_beyond_one_gpu", "q4_decision_70b", "+ per_gpu_extra <= CARD)", "+ per_gpu_extra <= CARD) + 1"),
    # issue 29: lesson 09's reward, advantages, surrogate, zero-signal share, log and group size
    "09_first_number": ("09_rl_verifiable_rewards", "q1_reward", "numbers and numbers[-1] == answer",
                        "numbers and numbers[0] == answer"),
    "09_contains": ("09_rl_verifiable_rewards", "q1_reward", "numbers and numbers[-1] == answer", "answer in numbers"),
    "09_population_std": ("09_rl_verifiable_rewards", "q2_advantages", "grouped.std(dim=1, keepdim=True)",
                          "grouped.std(dim=1, keepdim=True, correction=0)"),
    "09_batch_mean": ("09_rl_verifiable_rewards", "q2_advantages", "grouped - grouped.mean(dim=1, keepdim=True)",
                      "grouped - grouped.mean()"),
    "09_max_not_min": ("09_rl_verifiable_rewards", "q3_surrogate", "-torch.min(", "-torch.max("),
    "09_no_clip": ("09_rl_verifiable_rewards", "q3_surrogate", "ratio.clamp(1 - epsilon, 1 + epsilon) * a",
                   "ratio * a"),
    "09_mean_per_reply": ("09_rl_verifiable_rewards", "q3_surrogate", "(per_token * mask).sum() / mask.sum()",
                          "((per_token * mask).sum(1) / mask.sum(1)).mean()"),
    "09_only_all_wrong": ("09_rl_verifiable_rewards", "q4_zero_signal", "p ** group_size + (1 - p) ** group_size",
                          "(1 - p) ** group_size"),
    "09_mean_of_ratios": ("09_rl_verifiable_rewards", "q5_read_log",
                          'sum(e["generation_time"] for e in log) / sum(e["step_time"] for e in log)',
                          'float(np.mean([e["generation_time"] / e["step_time"] for e in log]))'),
    "09_not_learning": ("09_rl_verifiable_rewards", "q5_read_log", 'answer_loss = "B"', 'answer_loss = "A"'),
    "09_no_min_prompts": ("09_rl_verifiable_rewards", "q6_group_size",
                          "max((g for g in useful if signal_prompts[g] >= MIN_SIGNAL_PROMPTS), key=lambda g: useful[g])",
                          "max(useful, key=lambda g: useful[g])"),
    "09_prompts_with_signal": ("09_rl_verifiable_rewards", "q6_group_size", "key=lambda g: useful[g])",
                               "key=lambda g: signal_prompts[g])"),
    "09_prompts_not_signal": ("09_rl_verifiable_rewards", "q6_group_size", "BUDGET // int(g) * (1 - z)",
                              "BUDGET // int(g) * 1.0"),
    "09_zero_fraction_any_equal": ("09_rl_verifiable_rewards", "q4_zero_signal",
                                   "(grouped.max(1).values == grouped.min(1).values)",
                                   "(grouped.sum(1) == 0)"),
    # issue 30: a generation task where the lesson's task scores choices by log-likelihood
    "10_generate_not_choice": ("10_evaluation", "q1_task_yaml", "output_type: multiple_choice\ndoc_to_text",
                               "output_type: generate_until\ndoc_to_text"),
    # issue 30: the textbook √(p(1−p)/n) (population variance), not the harness's n − 1
    "10_stderr_population": ("10_evaluation", "q2_harness_stderr",
                             "sum((x - mean) ** 2 for x in scores) / (n - 1))", "sum((x - mean) ** 2 for x in scores) / n)"),
    # issue 30: resampling the two models independently throws the pairing away
    "10_bootstrap_unpaired": ("10_evaluation", "q3_paired_bootstrap", "    means = d[idx].mean(axis=1)\n",
                              "    other = np.random.default_rng(seed + 1).integers(0, len(d), size=(iters, len(d)))\n"
                              "    means = np.asarray(b, dtype=float)[idx].mean(axis=1) - np.asarray(a, dtype=float)[other].mean(axis=1)\n"),
    # issue 30: case kept (no lower-casing): "Return" and "return" become different words
    "10_ngrams_case": ("10_evaluation", "q4_ngram_overlap",
                       "str.maketrans(string.ascii_uppercase, string.ascii_lowercase, string.punctuation)",
                       "str.maketrans('', '', string.punctuation)"),
    "10_ngrams_off_by_one": ("10_evaluation", "q4_ngram_overlap", "range(len(words) - 12)", "range(len(words) - 13)"),
    # issue 30: the higher mean taken as the winner, without a test; the items needed not less the 48 held
    "10_higher_mean_wins": ("10_evaluation", "q5_decision",
                            'answer_q5 = "tie" if test5["p"] >= 0.05 else ("B" if test5["diff"] > 0 else "A")',
                            'answer_q5 = "B" if sum(b5) > sum(a5) else "A"'),
    "10_total_not_more": ("10_evaluation", "q5_decision", "items_needed(sd5, mean5) - len(d5)", "items_needed(sd5, mean5)"),
    # issue 31: lesson 11's counts, virtual-token cache, memory budget, BM25, retrieval and decision
    "11_kv_is_hidden": ("11_which_method", "q1_lora_params", "kv = config.num_key_value_heads * (h // config.num_attention_heads)",
                        "kv = h"),
    "11_dora_magnitude_per_input": ("11_which_method", "q1_lora_params", "+ (d_out if dora else 0)", "+ (d_in if dora else 0)"),
    "11_values_forgotten": ("11_which_method", "q2_virtual_tokens", "return n * config.num_hidden_layers * 2 * kv * bytes_per_value",
                            "return n * config.num_hidden_layers * kv * bytes_per_value"),
    "11_cache_hidden_wide": ("11_which_method", "q2_virtual_tokens", "return n * config.num_hidden_layers * 2 * kv * bytes_per_value",
                             "return n * config.num_hidden_layers * 2 * config.hidden_size * bytes_per_value"),
    "11_hidden_size_hard_coded": ("11_which_method", "q2_virtual_tokens", "return n * config.hidden_size",
                                  "return n * 576"),
    "11_disk_not_peak": ("11_which_method", "q3_budget", 'row["tensor_peak_bytes"] <= budget_bytes',
                         'row["adapter_bytes"] <= budget_bytes'),
    "11_strictly_below": ("11_which_method", "q3_budget", 'row["tensor_peak_bytes"] <= budget_bytes',
                          'row["tensor_peak_bytes"] < budget_bytes'),
    "11_classic_idf": ("11_which_method", "q4_bm25", "idf = math.log(1 + (n - df + 0.5) / (df + 0.5))",
                       "idf = math.log((n - df + 0.5) / (df + 0.5))"),
    "11_df_counts_occurrences": ("11_which_method", "q4_bm25", "df = sum(w in d for d in documents)",
                                 "df = sum(d.count(w) for d in documents)"),
    "11_query_words_once": ("11_which_method", "q4_bm25", "for w in query:", "for w in set(query):"),
    "11_no_length_normalisation": ("11_which_method", "q4_bm25", "tf + k1 * (1 - b + b * len(doc) / avgdl)", "tf + k1"),
    "11_least_similar_first": ("11_which_method", "q5_retrieval", "key=lambda i: (-scores[i], i))[:k]",
                               "key=lambda i: (scores[i], i))[:k]"),
    "11_tie_to_the_later_row": ("11_which_method", "q5_retrieval", "key=lambda i: (-scores[i], i))[:k]",
                                "key=lambda i: (-scores[i], -i))[:k]"),
    # part 6: each limit, PiSSA's servable file, equality at a limit, the narrow item-by-item tie and the tie rule
    "11_file_limit_forgotten": ("11_which_method", "q6_decision", 'and (r["servable_bytes"] or r["adapter_bytes"]) <= limits["file_bytes"]',
                                "and True"),
    "11_forgetting_bound_forgotten": ("11_which_method", "q6_decision",
                                      'and r["logprob_change"]["mean"] >= limits["logprob_change"])', ")"),
    "11_pissa_file_not_servable": ("11_which_method", "q6_decision", '(r["servable_bytes"] or r["adapter_bytes"]) <=',
                                   'r["adapter_bytes"] <='),
    "11_file_strictly_below": ("11_which_method", "q6_decision", '<= limits["file_bytes"]', '< limits["file_bytes"]'),
    "11_forgetting_strictly_above": ("11_which_method", "q6_decision", '>= limits["logprob_change"]',
                                     '> limits["logprob_change"]'),
    "11_forgetting_bound_reversed": ("11_which_method", "q6_decision", '>= limits["logprob_change"]',
                                     '<= limits["logprob_change"]'),
    "11_lowest_mean_only": ("11_which_method", "q6_decision", 'return min(tied, key=lambda m: (table[m]["tensor_peak_bytes"], m))',
                            "return best"),
    "11_intervals_overlap": ("11_which_method", "q6_decision",
                             'v["verdict"] == "not separated" and -0.05 < v["low"] and v["high"] < 0.05',
                             'table[m]["nll"]["low"] <= table[best]["nll"]["high"]'),
    "11_not_separated_is_a_tie": ("11_which_method", "q6_decision",
                                  'v["verdict"] == "not separated" and -0.05 < v["low"] and v["high"] < 0.05',
                                  'v["verdict"] == "not separated"'),
    "11_margin_without_separation": ("11_which_method", "q6_decision",
                                     'if v["verdict"] == "not separated" and -0.05 < v["low"] and v["high"] < 0.05]',
                                     'if -0.05 < v["low"] and v["high"] < 0.05]'),
    "11_ties_among_all_methods": ("11_which_method", "q6_decision",
                                  "versus = {m: cm.versus(rows[best], rows[m]) for m in ok if m != best}",
                                  "versus = {m: cm.versus(rows[best], rows[m]) for m in rows if m != best}"),
    "11_no_name_tie_break": ("11_which_method", "q6_decision", '(table[m]["tensor_peak_bytes"], m)',
                             'table[m]["tensor_peak_bytes"]'),
    "11_tie_to_the_least_forgetting": ("11_which_method", "q6_decision", '(table[m]["tensor_peak_bytes"], m)',
                                       '(-table[m]["logprob_change"]["mean"], m)'),
    "11_tie_to_the_smallest_file": ("11_which_method", "q6_decision", '(table[m]["tensor_peak_bytes"], m)',
                                    '(table[m]["servable_bytes"] or table[m]["adapter_bytes"], m)'),
    "11_tie_to_the_largest_peak": ("11_which_method", "q6_decision", '(table[m]["tensor_peak_bytes"], m)',
                                   '(-table[m]["tensor_peak_bytes"], m)'),
    "11_forgetting_decides_alone": ("11_which_method", "q6_decision",
                                    'return min(tied, key=lambda m: (table[m]["tensor_peak_bytes"], m))',
                                    'return min(ok, key=lambda m: (-table[m]["logprob_change"]["mean"], m))'),
    "11_peak_decides_alone": ("11_which_method", "q6_decision", "return min(tied, ", "return min(ok, "),
    "11_quality_by_rouge": ("11_which_method", "q6_decision", 'best = min(ok, key=lambda m: table[m]["nll"]["mean"])',
                            'best = max(ok, key=lambda m: table[m]["rouge_l"]["mean"])'),
}
NEEDS_SMOLLM2 = {"06_instruction_tuning", "11_which_method"}  # their solutions load it or its config and tokenizer
# (07's reads results files, the shipped pairs, a tiny Llama)


# What a forked child reports with its exit code.
RAISED, PASSED, OTHER_ERROR, TIMED_OUT = 0, 1, 2, -signal.SIGALRM
CHILD_SECONDS = 300


def code_cells(notebook: str) -> tuple[list[str], dict[str, int]]:
    """The code cells of a solution source, and the index of each test cell by its grade_id."""
    nb = jupytext.read(REPO / "sources" / "solutions" / f"{notebook}.py", fmt="py:percent")
    cells = [c for c in nb.cells if c.cell_type == "code"]
    return [c.source for c in cells], {c.metadata["course"]["grade_id"]: i for i, c in enumerate(cells)
                                       if "grade_id" in c.metadata.get("course", {})}


def run_cells(sources: list[str], namespace: dict) -> None:
    """Run the cells in the namespace, as a kernel would; the last one's exception propagates."""
    with contextlib.redirect_stdout(io.StringIO()):
        for src in sources:
            exec(compile(src, "<cell>", "exec"), namespace)  # noqa: S102 - the course's own solution cells


def outcome_in_child(sources: list[str], namespace: dict) -> int:
    """Run the cells in a forked copy of this process; RAISED when the last one raised an AssertionError."""
    sys.stdout.flush(), sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = OTHER_ERROR
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1), os.dup2(devnull, 2)  # keep pytest-xdist's channel clean
            signal.alarm(CHILD_SECONDS)
            run_cells(sources, namespace)
            code = PASSED
        except AssertionError:
            code = RAISED
        except BaseException:  # noqa: BLE001 - any other failure is reported as such
            code = OTHER_ERROR
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


NOTEBOOKS = sorted({nb for nb, *_ in WRONG.values()})


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_each_wrong_answer_fails_its_part(notebook, monkeypatch):
    if notebook in NEEDS_SMOLLM2:
        from course_lib.models import zoo
        with zoo.conversion_lock("smollm2-135m-instruct"):  # `make test` converts it while the suite starts
            pass
    if notebook in NEEDS_SMOLLM2 and not (REPO / "data" / "models" / "smollm2-135m-instruct").exists():
        pytest.skip("needs SmolLM2 (`course get-model smollm2-135m-instruct`)")
    monkeypatch.chdir(REPO)
    cells, tests = code_cells(notebook)
    cases: dict[int, list[tuple[str, int, str, str]]] = {}  # answer cell -> (case, test cell, right, wrong)
    for case, (nb, grade_id, right, wrong) in WRONG.items():
        if nb != notebook:
            continue
        assert grade_id in tests, f"{case}: {notebook} has no test cell {grade_id!r}"
        answer = [i for i in range(tests[grade_id]) if right in cells[i]]
        assert len(answer) == 1 and cells[answer[0]].count(right) == 1, \
            f"{case}: {right!r} is no longer in one answer cell of {notebook} before {grade_id}"
        cases.setdefault(answer[0], []).append((case, tests[grade_id], right, wrong))
    namespace: dict = {"__name__": "__main__"}
    unmet = []
    for i, src in enumerate(cells[:max(tests.values()) + 1]):
        for case, test, right, wrong in cases.get(i, []):
            got = outcome_in_child([src.replace(right, wrong)] + cells[i + 1:test + 1], namespace)
            if got != RAISED:
                unmet.append(f"{case}: " + {PASSED: "the wrong answer passed its test cell",
                                            TIMED_OUT: f"still running after {CHILD_SECONDS} s"}.get(
                    got, f"the wrong answer failed with something other than an AssertionError (exit {got})"))
        run_cells([src], namespace)  # the control: the right answer passes, and the next cells build on it
    assert not unmet, "\n".join(unmet)
