"""course_lib.evaluation.claims: each lesson claim re-tested from its file, with a verdict that could fail."""

import pytest

from course_lib.evaluation import claims
from course_lib.evaluation.claims import CLAIMS, Claim, claims_table, retest
from course_lib.results import load_results


def test_every_claim_reads_its_file():
    table = claims_table()
    assert len(table) == len(CLAIMS) and {r["lesson"] for r in table} == {"01", "02", "03", "04", "05", "06", "07"}
    assert {r["verdict"] for r in table} <= {"yes", "seeds only", "no", "reversed", "tie holds", "not a tie",
                                             "cannot be tested", "items only (1 seed)"}
    for r in table:
        if "diff" in r:
            assert r["low"] <= r["diff"] <= r["high"] and 0 <= r["p"] <= 1


def _claim(kind_data: dict, **kw) -> Claim:
    return Claim("00", "a test claim", "a", "b", lambda: kind_data, **kw)


def test_verdicts_follow_the_numbers():
    strong = {"kind": "seeds", "items": None, "a": [1.0, 1.1, 0.9], "b": [2.0, 2.1, 1.9]}
    assert retest(_claim(strong))["verdict"] == "yes"
    assert retest(_claim(strong, lower_is_better=True))["verdict"] == "reversed"
    assert retest(_claim(strong, tie=True))["verdict"] == "not a tie"
    noisy = {"kind": "seeds", "items": None, "a": [1.0, 2.0, 0.0], "b": [1.5, 0.5, 2.5]}
    assert retest(_claim(noisy))["verdict"] == "no"
    assert retest(_claim(noisy, tie=True))["verdict"] == "tie holds"
    # significant across seeds, but an accuracy on 50 items: the items' bound takes it back
    few_items = {"kind": "seeds", "items": 50, "a": [0.60, 0.61, 0.62], "b": [0.66, 0.67, 0.68]}
    row = retest(_claim(few_items))
    assert row["p"] < 0.05 < row["p_with_items"] and row["verdict"] == "seeds only"
    paired = {"kind": "items", "binary": True, "a": [0] * 10, "b": [1] * 10}
    assert retest(_claim(paired))["p"] == pytest.approx(2 * 0.5 ** 10)


def test_the_lessons_claims_as_measured():
    by = {(r["lesson"], r["says"]): r for r in claims_table()}
    scratch = by[("01", "pre-training is worth it: full fine-tuning beats training from scratch (whole training set)")]
    assert scratch["verdict"] == "yes"
    dpo = next(r for (lesson, _), r in by.items() if lesson == "07")
    pooled = load_results("dpo")["win_rate"]  # the lesson's win rates, pooled over the seeds per prompt
    assert dpo["mean_a"] == pytest.approx(pooled["dpo@0.001"]["win_rate"])
    assert dpo["mean_b"] == pytest.approx(pooled["dpo+sft@0.001"]["win_rate"])
    assert dpo["n"] == "3 + 3 seeds × 48 items" and dpo["test"].startswith("seeds × items")
    # DPO + SFT is ahead on average, but plain DPO's seeds (0.198 to 0.667) spread wider than the gap
    assert dpo["diff"] > 0.1 and dpo["p"] > 0.3 and dpo["low"] < 0 and dpo["verdict"] == "no"
    # the same noise as lesson 07's intervals: each arm's two-way se, seeds and prompts, enters the difference
    se_a, se_b = pooled["dpo@0.001"]["se"], pooled["dpo+sft@0.001"]["se"]
    assert se_a > 2 * pooled["dpo@0.001"]["se_prompts"]  # plain DPO's seeds: most of its noise
    assert dpo["high"] - dpo["low"] > 2 * 1.96 * max(se_a, se_b)  # no narrower than either arm's own noise
    assert claims.CLAIMS[0].data()["items"] == 495
