"""course_lib.forgetting.measuring: the sign convention of the two numbers, the task data, one model measured (lesson 05)."""

import math

import pytest

from course_lib import forgetting as fg
from course_lib.data.datasets import instruction_text, prompt_of
from course_lib.metrics import mean_nll, next_token_accuracy


def test_sign_convention():
    assert fg.forgetting(10.0, 12.0) > 0, "general perplexity went up: that is forgetting, so positive"
    assert fg.forgetting(10.0, 8.0) < 0
    assert fg.forgetting(7.0, 7.0) == 0.0
    assert math.isclose(fg.forgetting(10.0, 20.0), math.log(2))
    assert fg.target_gain(10.0, 5.0) > 0, "target perplexity went down: that is learning, so positive"
    assert math.isclose(fg.target_gain(10.0, 5.0), math.log(2))


def test_prompt_of_cuts_before_the_answer():
    text = instruction_text({"instruction": "Explain `f`.", "input": "def f(x)", "output": "Returns x."})
    assert prompt_of(text) + "Returns x." == text


def test_measure_reports_the_metrics_it_names(text_tokenizer, text_llama, texts):
    model = text_llama()
    data = fg.TaskData(target_train=texts[:4], target_val=texts[4:8], general=texts[8:12], replay=[],
                       task_b_val=texts[12:14])
    got = fg.measure(model, text_tokenizer, data, max_length=32)
    assert math.isclose(got["general_ppl"], math.exp(mean_nll(model, text_tokenizer, texts[8:12], 32)))
    assert got["general_acc"] == next_token_accuracy(model, text_tokenizer, texts[8:12], 32)
    assert math.isclose(got["task_b_ppl"], math.exp(mean_nll(model, text_tokenizer, texts[12:14], 32)))
    assert "task_b_ppl" not in fg.measure(model, text_tokenizer, data, max_length=32, task_b=False)


def test_summarize_mean_and_sample_std():
    results = {"runs": [{"name": "a", "gain": g, "forgetting": 0.1} for g in (1.0, 2.0, 3.0)]}
    summary = fg.summarize(results)["a"]
    assert summary["seeds"] == 3 and summary["gain"] == (2.0, 1.0) and summary["forgetting"] == (pytest.approx(0.1), 0.0)
