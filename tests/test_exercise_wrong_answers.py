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
    # the part's own warning: log(sigmoid(x)) is -inf for a large negative x
    "07_log_of_sigmoid": ("07_preference_tuning", "q3_dpo_loss", "    return -F.logsigmoid(logits).mean()",
                          "    return -torch.log(torch.sigmoid(logits)).mean()"),
    # with ties, sqrt(p(1-p)/n) is not the standard error of the outcomes' mean
    "07_binomial_se_with_ties": ("07_preference_tuning", "q4_win_rate_error",
                                 "    se = math.sqrt(sum((x - rate) ** 2 for x in outcomes) / (n - 1)) / math.sqrt(n)",
                                 "    se = math.sqrt(rate * (1 - rate) / n)"),
    "07_se_over_n": ("07_preference_tuning", "q4_win_rate_error",
                     "    se = math.sqrt(sum((x - rate) ** 2 for x in outcomes) / (n - 1)) / math.sqrt(n)",
                     "    se = math.sqrt(sum((x - rate) ** 2 for x in outcomes) / (n - 1)) / n"),
    # issue 28 (issue 25, item 22): a noise-aware decision with real alternatives
    "07_point_estimate_not_interval": ("07_preference_tuning", "q5_ship_a_run",
                                       'upper = {label(r): r["after"]["win_rate"]["win_rate"] + 1.96 * r["after"]["win_rate"]["se"] for r in sweep["runs"]}',
                                       'upper = {label(r): r["after"]["win_rate"]["win_rate"] for r in sweep["runs"]}'),
    "07_no_guard": ("07_preference_tuning", "q5_ship_a_run", "admissible = sorted(arm for arm, u in upper.items() if u >= 0.5)",
                    "admissible = sorted(upper)"),
    "07_ship_the_best_win_rate": ("07_preference_tuning", "q5_ship_a_run", "best_arm = max(admissible, key=names.get)",
                                  'best_arm = max(admissible, key=lambda a: next(r["after"]["win_rate"]["win_rate"] '
                                  'for r in sweep["runs"] if label(r) == a))'),
    # issue 26: `/` instead of `//` returns floats for every sharded stage
    "08_true_division": ("08_beyond_one_gpu", "q1_zero_by_hand", "    return 2 * n // num_gpus + 16 * n // num_gpus + 4",
                         "    return 2 * n / num_gpus + 16 * n / num_gpus + 4"),
    # issue 25, item 23: the answers are no longer in the visible tests
    "08_accumulation_per_gpu": ("08_beyond_one_gpu", "q2_global_batch", "accumulation_for_32 = 4", "accumulation_for_32 = 16"),
    "08_one_gpu_too_many": ("08_beyond_one_gpu", "q4_decision_70b", "+ per_gpu_extra <= CARD)", "+ per_gpu_extra <= CARD) + 1"),
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
