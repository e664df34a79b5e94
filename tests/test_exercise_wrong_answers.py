"""Every graded part fails a plausible wrong answer (EXERCISES.md: "the trap the lesson warns about").

Each case takes a solution notebook's source (sources/solutions/NN_topic.py), swaps one piece of its
answer for a wrong one, runs every code cell up to the part's test cell — hidden tests included, as
nbgrader and `course grade` run them — and expects that test cell to raise. The unchanged solution must
pass the same cells (the control), so a failure is the wrong answer's, not the set-up's.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import jupytext
import pytest

REPO = Path(__file__).resolve().parents[1]

# (notebook, grade_id, what the answer cell says, the wrong answer), one row per trap
WRONG = {
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
    # issue 25, item 22: the logged margin is in β·nats
    "07_margin_not_divided": ("07_preference_tuning", "q4_read_log",
                              'final_margin_nats = log[-1]["rewards/margins"] / 0.1',
                              'final_margin_nats = log[-1]["rewards/margins"]'),
    "07_chosen_rose": ("07_preference_tuning", "q4_read_log",
                       'answer_chosen = "A" if log[-1]["rewards/chosen"] > 0 else "B" if log[-1]["rewards/chosen"] < 0 else "C"',
                       'answer_chosen = "A"'),
    # issue 25, item 22: margins compared in β·nats favour the largest β
    "07_margin_in_beta_nats": ("07_preference_tuning", "q5_choose_beta",
                               'r["after"]["reward_margins"] / b for r', 'r["after"]["reward_margins"] for r'),
    "07_budget_ignored": ("07_preference_tuning", "q5_choose_beta",
                          "best_beta = max(allowed, key=lambda b: mean_margin_nats[b])",
                          "best_beta = max(betas, key=lambda b: mean_margin_nats[b])"),
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
                          "max((g for g in useful if BUDGET // g >= MIN_PROMPTS), key=lambda g: useful[g])",
                          "max(useful, key=lambda g: useful[g])"),
    "09_prompts_with_signal": ("09_rl_verifiable_rewards", "q6_group_size", "BUDGET * (1 - z)",
                               "BUDGET // int(g) * (1 - z)"),
}
SLOW = {"06_base_model_judges"}  # loads SmolLM2 twice


def cells_until(notebook: str, grade_id: str) -> list[str]:
    """The code cells of a solution source, up to and including the test cell `grade_id`."""
    nb = jupytext.read(REPO / "sources" / "solutions" / f"{notebook}.py", fmt="py:percent")
    out = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        out.append(cell.source)
        if cell.metadata.get("course", {}).get("grade_id") == grade_id:
            return out
    raise KeyError(f"{notebook} has no test cell {grade_id!r}")


def run_cells(sources: list[str]) -> None:
    """Run the cells in one namespace, as a kernel would; the last one's exception propagates."""
    namespace: dict = {"__name__": "__main__"}
    with contextlib.redirect_stdout(io.StringIO()):
        for src in sources:
            exec(compile(src, "<cell>", "exec"), namespace)  # noqa: S102 - the course's own solution cells


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(WRONG), ids=str)
def test_a_wrong_answer_fails_its_part(case, monkeypatch):
    if case in SLOW and not (REPO / "data" / "models" / "smollm2-135m-instruct").exists():
        pytest.skip("needs SmolLM2 (`course get-model smollm2-135m-instruct`)")
    monkeypatch.chdir(REPO)
    notebook, grade_id, right, wrong = WRONG[case]
    cells = cells_until(notebook, grade_id)
    answer = [i for i, src in enumerate(cells) if right in src]
    assert len(answer) == 1 and cells[answer[0]].count(right) == 1, f"{right!r} is no longer in one answer cell"
    run_cells(cells)  # the solution passes: the control
    cells[answer[0]] = cells[answer[0]].replace(right, wrong)
    with pytest.raises(AssertionError):
        run_cells(cells)
