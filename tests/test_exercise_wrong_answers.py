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
