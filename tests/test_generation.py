"""course_lib.forgetting.generation: greedy answers and the retention probe (lesson 05)."""

import math

import pytest
import torch

from course_lib.forgetting.generation import (GENERAL_PROMPTS, answer_logprob, greedy_answers, prompt_ids, retention,
                                   retention_reference)


def test_answer_logprob_is_the_mean_log_softmax_of_the_answer_tokens(text_llama):
    model = text_llama()
    prompt, answer = [5, 9, 12], [7, 3]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt + answer])).logits[0]
    logp = torch.log_softmax(logits, -1)
    expected = (logp[2, 7] + logp[3, 3]).item() / 2  # position t predicts token t + 1
    assert math.isclose(answer_logprob(model, prompt, answer), expected, rel_tol=1e-5)
    with pytest.raises(ValueError):
        answer_logprob(model, prompt, [])


def test_prompt_ids_use_the_chat_template_when_there_is_one(text_tokenizer):
    question = GENERAL_PROMPTS[0]
    if text_tokenizer.chat_template:
        assert len(prompt_ids(text_tokenizer, question)) > len(text_tokenizer(question)["input_ids"])
    template, text_tokenizer.chat_template = text_tokenizer.chat_template, None
    try:
        assert prompt_ids(text_tokenizer, question) == text_tokenizer(question)["input_ids"]
    finally:
        text_tokenizer.chat_template = template


def test_an_unchanged_model_keeps_every_answer(text_llama, text_tokenizer):
    model = text_llama()
    reference = retention_reference(model, text_tokenizer, GENERAL_PROMPTS[:3], max_new_tokens=5)
    assert len(reference.answers) == 3 and all(1 <= len(a) <= 5 for a in reference.answers)
    assert all(lp <= 0 for lp in reference.logprobs)
    same = retention(model, text_tokenizer, reference)
    assert same["kept"] == 1.0 and same["logprob_change"] == pytest.approx(0.0, abs=1e-6)
    assert len(same["answers"]) == 3


def test_a_changed_model_moves_the_probe(text_llama, text_tokenizer):
    model = text_llama()
    reference = retention_reference(model, text_tokenizer, GENERAL_PROMPTS[:4], max_new_tokens=5)
    torch.manual_seed(0)
    with torch.no_grad():  # a large random change: a fresh tiny model answers every prompt alike
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    other = retention(model, text_tokenizer, reference)
    assert 0.0 <= other["kept"] < 1.0
    assert other["logprob_change"] != 0.0


def test_greedy_answers_are_strings_one_per_prompt(text_llama, text_tokenizer):
    answers = greedy_answers(text_llama(), text_tokenizer, ["Return the", "Open a"], max_new_tokens=3)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
