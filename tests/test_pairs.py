"""course_lib.tuning.pairs: the docstring rule, on-policy pairs, win rates with their uncertainty, the shipped pairs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from course_lib.data.datasets import format_ok
from course_lib.evaluation.uncertainty import seeds_by_items, seeds_by_items_difference
from course_lib.tuning import pairs, sft

PROMPT = "Explain what the Python function `m.f` does.\n\ndef f(self, key, x, *args, default=None, **kwargs)"


def test_parameters_leave_out_self_cls_and_one_letter_names():
    assert pairs.parameters_of(PROMPT) == ["key", "args", "default", "kwargs"]
    assert pairs.parameters_of("Explain what the Python function `m.C.g` does.\n\ndef g(cls, /, a, name)") == ["name"]
    assert pairs.parameters_of("What is the class `m.C` in Python's standard library for?") == []
    assert pairs.parameters_of("def broken(self, ") == []  # not Python: no parameters, no exception


def test_names_are_matched_as_words_in_any_case():
    params = ["key", "default"]
    assert pairs.names_covered("Return the KEY, or default.", params) == 1.0
    assert pairs.names_covered("Return the keys.", params) == 0.0  # 'keys' is not the parameter 'key'
    assert pairs.names_covered("Return the key_map.", params) == 0.0
    assert pairs.names_covered("Anything.", []) == 1.0  # nothing to name


def test_the_rule_is_zero_outside_the_format_and_a_mean_inside():
    reference = "Return the value for key, or default."
    good = pairs.score_parts("Return the value of key.", PROMPT, reference)
    assert good["format_ok"] and good["names"] == 0.25
    assert good["score"] == pytest.approx((0.25 + good["rouge_l"]) / 2) and 0 < good["rouge_l"] < 1
    assert pairs.docstring_score("Return the value of key", PROMPT, reference) == 0.0  # no full stop
    assert pairs.docstring_score("Return the value\nof key.", PROMPT, reference) == 0.0  # two lines
    assert pairs.docstring_score(reference, PROMPT, reference) == pytest.approx((0.5 + 1.0) / 2)


def test_an_on_policy_pair_is_the_best_and_the_worst_sample():
    samples = ["a.", "b.", "c.", "d."]
    pair = pairs.on_policy_pair("p", samples, [0.2, 0.5, 0.0, 0.5])
    assert (pair["chosen"], pair["rejected"], pair["chosen_score"], pair["rejected_score"]) == ("b.", "c.", 0.5, 0.0)
    assert pair["kind"] == "on-policy" and pair["prompt"] == "p"
    assert pairs.on_policy_pair("p", samples, [0.3] * 4) is None  # all tied: nothing to prefer


def test_win_rate_standard_error_and_interval():
    w = pairs.win_rate([1.0, 0.0, 0.5, 1.0])
    mean = 0.625
    se = math.sqrt(sum((v - mean) ** 2 for v in (1, 0, 0.5, 1)) / 3 / 4)  # sample std over √n
    assert w["win_rate"] == mean and w["se"] == pytest.approx(se)
    assert w["ci95"] == pytest.approx([mean - 1.96 * se, mean + 1.96 * se])
    assert (w["wins"], w["ties"], w["losses"], w["n"], w["seeds"]) == (2, 1, 1, 4, 1)
    pooled = pairs.win_rate([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])  # 3 seeds, 2 prompts: averaged per prompt first
    assert pooled["win_rate"] == pytest.approx(2 / 3) and pooled["n"] == 2 and pooled["seeds"] == 3
    assert pooled["se_prompts"] == pytest.approx(0.0)  # both prompts won 2 of 3 times
    assert pairs.outcomes([0.3, 0.2, 0.1], [0.2, 0.2, 0.5]) == [1.0, 0.5, 0.0]


def test_the_pooled_win_rate_counts_the_seeds_noise():
    """A seed that trained a better model wins every prompt: the per-prompt spread is 0, the seeds' is not."""
    w = pairs.win_rate([[1.0] * 4, [0.0] * 4, [1.0] * 4])
    assert w["se_prompts"] == pytest.approx(0.0)
    assert w["se"] == pytest.approx(np.std([1, 0, 1], ddof=1) / math.sqrt(3))  # = the se of the 3 seed means
    assert w["df"] == pytest.approx(2.0)
    assert w["ci95"] == pytest.approx([2 / 3 - 4.302653 * w["se"], 2 / 3 + 4.302653 * w["se"]], rel=1e-5)  # t, 2 df


def test_the_pooled_win_rates_interval_covers_as_it_says():
    """Seeds × prompts with both effects, simulated: the se matches the spread of the mean over repeats, and
    the 95 % interval holds the true mean about 95 % of the time (averaging per prompt alone: far less)."""
    rng = np.random.default_rng(0)
    seeds, prompts, repeats = 3, 48, 2000
    means, ses, covered, covered_prompts_only = [], [], 0, 0
    for _ in range(repeats):
        y = 0.5 + rng.normal(0, 0.1, (seeds, 1)) + rng.normal(0, 0.2, (1, prompts)) + rng.normal(0, 0.3, (seeds, prompts))
        w = seeds_by_items(y.tolist())
        means.append(w["mean"])
        ses.append(w["se"])
        covered += w["ci95"][0] <= 0.5 <= w["ci95"][1]
        covered_prompts_only += abs(w["mean"] - 0.5) <= 1.96 * w["se_items"]
    true_se = math.sqrt(0.1 ** 2 / seeds + 0.2 ** 2 / prompts + 0.3 ** 2 / (seeds * prompts))
    assert np.std(means) == pytest.approx(true_se, rel=0.1)
    assert np.sqrt(np.mean(np.square(ses))) == pytest.approx(true_se, rel=0.15)
    assert 0.92 <= covered / repeats <= 0.99
    assert covered_prompts_only / repeats < 0.8


def test_the_difference_of_two_arms_pairs_the_prompts_and_not_the_seeds():
    a = [[0.0, 1.0, 0.5, 1.0], [0.0, 1.0, 0.5, 1.0]]
    same = seeds_by_items_difference(a, a)
    assert same["diff"] == 0 and same["se"] == 0  # the same answers: no noise at all
    shifted = [[x + 0.25 for x in row] for row in a]  # each prompt up by the same amount, seeds agree
    d = seeds_by_items_difference(a, shifted)
    assert d["diff"] == pytest.approx(0.25) and d["se"] == pytest.approx(0.0, abs=1e-12)
    lucky = [[x + 0.5 for x in a[0]], a[1]]  # one seed of b better on every prompt: only the seeds can say so
    d = seeds_by_items_difference(a, lucky)
    assert d["diff"] == pytest.approx(0.25) and d["se"] == pytest.approx(0.25) and d["df"] == pytest.approx(1.0)


def test_batched_greedy_answers_equal_one_prompt_at_a_time(chat_tok, small_chat_model):
    model = small_chat_model().eval()
    rows = sft.task_rows("validation", 3)
    prompts = [sft.prompt_for(chat_tok, r) for r in rows]
    batched, cut = pairs.greedy_answers(model, chat_tok, prompts, max_new_tokens=6, batch_size=3)
    alone, alone_cut = sft.greedy_answers_and_cuts(model, chat_tok, prompts, 6)
    assert batched == alone and cut == alone_cut
    assert chat_tok.padding_side == "right"  # put back


def test_sampling_repeats_with_its_seed(chat_tok, small_chat_model):
    model = small_chat_model()
    prompts = [sft.prompt_for(chat_tok, r) for r in sft.task_rows("validation", 2)]
    torch.manual_seed(0)
    first = pairs.sample_answers(model, chat_tok, prompts, k=3, max_new_tokens=5, batch_size=4)
    torch.manual_seed(0)
    again = pairs.sample_answers(model, chat_tok, prompts, k=3, max_new_tokens=5, batch_size=4)
    assert first == again and [len(s) for s in first] == [3, 3]
    assert len({t for s in first for t in s}) > 1  # sampled, not greedy


def test_the_shipped_pairs_follow_the_rule_and_keep_their_splits_apart():
    prompts, lesson06 = {}, set()
    for split, n in (("train", 32), ("validation", 16), ("test", 8)):  # what lesson 06 trained, validated, tested on
        lesson06 |= {r["messages"][0]["content"] for r in sft.task_rows(split, n)}
    for split in ("train", "validation", "test"):
        rows, kept = pairs.on_policy_rows(split), pairs.sample_rows(split)
        prompts[split] = {r["prompt"] for r in kept}
        assert len(prompts[split]) == len(kept) and not prompts[split] & lesson06
        by_prompt = {r["prompt"]: r for r in kept}
        for p in rows:
            k = by_prompt[p["prompt"]]
            assert p["chosen"] in k["samples"] and p["rejected"] in k["samples"]
            assert p["chosen_score"] == max(k["scores"]) > p["rejected_score"] == min(k["scores"])
            assert round(pairs.docstring_score(p["chosen"], p["prompt"], p["reference"]), 6) == p["chosen_score"]
        for k in kept:
            assert round(pairs.docstring_score(k["sft_answer"], k["prompt"], k["reference"]), 6) == k["sft_score"]
        assert len(rows) == sum(max(k["scores"]) > min(k["scores"]) for k in kept)  # a pair for every untied prompt
    for a, b in (("train", "validation"), ("train", "test"), ("validation", "test")):
        assert not prompts[a] & prompts[b]
    assert all(format_ok(p["chosen"]) for p in pairs.on_policy_rows("train"))  # the best sample is a docstring
