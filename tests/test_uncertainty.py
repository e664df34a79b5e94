"""course_lib.evaluation.uncertainty against the libraries that define each quantity (lm-eval, scipy)."""

import math
import random

import pytest

from course_lib.evaluation.uncertainty import (detectable_difference, items_needed, mcnemar, mean_stderr,
                                               paired_bootstrap, proportion_stderr, sign_flip, welch)


def test_mean_stderr_is_lm_evals():
    from lm_eval.api.metrics import mean_stderr as harness_stderr

    rng = random.Random(0)
    for scores in ([1.0, 0.0, 1.0, 1.0], [rng.random() for _ in range(50)], [float(rng.random() < 0.3) for _ in range(40)]):
        assert mean_stderr(scores) == pytest.approx(harness_stderr(scores), rel=1e-12)
    p, n = 0.25, 40  # 0/1 scores: sqrt(p(1-p)/(n-1)), not the textbook /n
    scores = [1.0] * 10 + [0.0] * 30
    assert mean_stderr(scores) == pytest.approx(math.sqrt(p * (1 - p) / (n - 1)))
    assert mean_stderr(scores) > proportion_stderr(p, n)
    with pytest.raises(ValueError):
        mean_stderr([1.0])


def test_mcnemar_counts_only_disagreements():
    a = [1, 1, 0, 0, 1, 0, 1, 1]
    b = [1, 1, 1, 1, 1, 1, 1, 1]  # b wins 3 items, loses none
    out = mcnemar(a, b)
    assert (out["a_only"], out["b_only"]) == (0, 3)
    assert out["p"] == pytest.approx(2 * 0.5 ** 3)
    assert mcnemar(a, a)["p"] == 1.0
    from scipy.stats import binomtest

    a = [1] * 7 + [0] * 13 + [1] * 20 + [0] * 10
    b = [0] * 7 + [1] * 13 + [1] * 20 + [0] * 10
    assert mcnemar(a, b)["p"] == pytest.approx(binomtest(7, 20, 0.5).pvalue)


def test_paired_bootstrap_centres_on_the_difference_and_pairs():
    rng = random.Random(1)
    hard = [rng.random() for _ in range(200)]  # item difficulty both models share
    a = [h for h in hard]
    b = [h + 0.05 + rng.gauss(0, 0.01) for h in hard]
    out = paired_bootstrap(a, b, iters=2000)
    assert out["diff"] == pytest.approx(sum(y - x for x, y in zip(a, b)) / 200)
    assert out["low"] < out["diff"] < out["high"] and out["p"] < 0.01
    assert out["high"] - out["low"] < 0.01  # pairing cancels the shared difficulty (spread ~0.3 per item)
    same = paired_bootstrap(a, a, iters=500)
    assert same["diff"] == 0.0 and same["p"] == 1.0
    with pytest.raises(ValueError, match="same items"):
        paired_bootstrap([1.0, 2.0], [1.0])


def test_welch_matches_scipy():
    from scipy.stats import ttest_ind

    a, b = [0.6646, 0.6424, 0.6768], [0.5859, 0.6101, 0.598]
    out = welch(a, b)
    ref = ttest_ind(b, a, equal_var=False)
    assert out["p"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert out["diff"] / out["se"] == pytest.approx(ref.statistic, rel=1e-9)
    assert out["low"] < out["diff"] < out["high"] < 0
    with pytest.raises(ValueError, match="two runs"):
        welch([1.0], [1.0, 2.0])


def test_power_round_trip():
    sd = math.sqrt(0.5 * 0.5 * 2)  # two unpaired proportions near 0.5
    n = items_needed(sd, 0.1)
    assert n == 393  # (1.95996 + 0.84162)² · 0.5 / 0.1² = 392.4, rounded up
    assert detectable_difference(sd, n) <= 0.1 < detectable_difference(sd, n - 1)
    assert items_needed(sd, 0.05) == pytest.approx(4 * n, rel=0.01)  # half the difference, four times the items
    with pytest.raises(ValueError):
        items_needed(sd, 0.0)


def test_sign_flip_is_scipys_exact_permutation_test():
    """Exact for few items (scipy enumerates every sign too), never below 2 / 2ⁿ, random flips agree for many."""
    from scipy.stats import permutation_test

    d = [0.074, 0.097, -0.117, 0.205, 0.180, -0.003, 0.259, 0.408]  # lesson 06's ROUGE-L gains, after − before
    out = sign_flip([0.0] * len(d), d)
    ref = permutation_test((d,), lambda x: sum(x) / len(x), permutation_type="samples", n_resamples=10_000)
    assert out["exact"] and out["p"] == pytest.approx(ref.pvalue) and out["p"] == pytest.approx(0.0625)
    assert sign_flip([0.0] * 3, [1.0, 2.0, 3.0])["p"] == pytest.approx(2 / 8)  # all one sign: the floor
    rng = random.Random(1)
    many = [rng.gauss(0.3, 1.0) for _ in range(40)]
    approx = sign_flip([0.0] * 40, many, iters=20_000)
    ref = permutation_test((many,), lambda x: sum(x) / len(x), permutation_type="samples", n_resamples=20_000,
                           random_state=0)
    assert not approx["exact"] and approx["p"] == pytest.approx(ref.pvalue, abs=0.02)
    with pytest.raises(ValueError):
        sign_flip([1.0], [2.0])


def test_one_run_claims_say_items_only():
    """A one-run comparison that passes tests the items' noise only; lesson 06's ROUGE-L gain is not significant."""
    from course_lib.evaluation.claims import CLAIMS, retest

    rows = {c.says: retest(c) for c in CLAIMS}
    rouge = rows["after SFT ROUGE-L about doubled"]
    assert rouge["test"] == "sign flips (exact)" and rouge["p"] == pytest.approx(0.0625) and rouge["verdict"] == "no"
    assert all(r["verdict"] != "yes" for r in rows.values() if r.get("one_run"))
    assert any(r["verdict"] == "items only (1 seed)" for r in rows.values())
