"""course_lib.tuning.judge: the judge's prompt, its verdicts in both orders, and what the summary counts."""

from __future__ import annotations

import pytest

from course_lib.tuning import judge

PAIR = {"prompt": "Explain what the Python function `m.f` does.\n\ndef f(self, key)", "chosen": "Return the key.",
        "rejected": "Do something with many many words here."}


def test_the_prompt_shows_the_function_and_both_answers_in_the_asked_order(chat_tok):
    first = judge.judge_prompt(chat_tok, PAIR, chosen_first=True)
    second = judge.judge_prompt(chat_tok, PAIR, chosen_first=False)
    assert "A: Return the key.\nB: Do something" in first and "A: Do something" in second
    assert "`m.f`\ndef f(self, key)" in first and "Explain what" not in first
    assert first.endswith("<|im_start|>assistant\n")  # the next token is the verdict
    a, b = judge.verdict_tokens(chat_tok)
    assert chat_tok.decode([a]) == "A" and chat_tok.decode([b]) == "B"


def test_verdicts_do_not_depend_on_the_padding(chat_tok, small_chat_model):
    model = small_chat_model()
    pairs = [PAIR, {**PAIR, "chosen": "Return it."}, {**PAIR, "rejected": "No."}]
    one = judge.judge_pairs(model, chat_tok, pairs, batch_size=1)
    many = judge.judge_pairs(model, chat_tok, pairs, batch_size=6)
    for x, y in zip(one, many):
        assert x["p_a_chosen_first"] == pytest.approx(y["p_a_chosen_first"], abs=1e-5)
        assert 0 < x["p_a_chosen_second"] < 1
    assert chat_tok.padding_side == "right"


def test_the_summary_counts_agreement_flips_position_and_length():
    pairs = [PAIR] * 4
    verdicts = [{"p_a_chosen_first": 0.9, "p_a_chosen_second": 0.2},  # chosen both times: agrees
                {"p_a_chosen_first": 0.1, "p_a_chosen_second": 0.8},  # rejected both times: disagrees
                {"p_a_chosen_first": 0.7, "p_a_chosen_second": 0.6},  # "A" both times: flips with the order
                {"p_a_chosen_first": 0.7, "p_a_chosen_second": 0.3}]  # agrees
    s = judge.judge_summary(verdicts, pairs)
    assert (s["agreement"], s["disagreement"], s["flip_rate"]) == (0.5, 0.25, 0.25)
    assert s["agreement_among_consistent"] == pytest.approx(2 / 3)
    assert s["agreement_ties_half"] == pytest.approx((2 + 0.5) / 4)
    assert s["first_position_rate"] == pytest.approx(5 / 8)  # A, B | B, A | A, A | A, B
    assert s["longer_wins"] == pytest.approx(1 / 3)  # the rejected answer is the longer one
    assert s["leans_to_chosen"] == 0.75  # 0.9 > 0.2, 0.1 < 0.8, 0.7 > 0.6, 0.7 > 0.3
