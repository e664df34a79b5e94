"""course_lib.data.preferences: the pairs' splits are disjoint, every preference is real, the build repeats."""

from __future__ import annotations

from course_lib.data import preferences
from course_lib.data.datasets import data_dir, format_ok, read_jsonl


def test_splits_are_disjoint_and_every_preference_is_real():
    splits = {s: preferences.preference_rows(s) for s in ("train", "validation", "test")}
    assert {s: len(r) for s, r in splits.items()} == preferences.SPLIT_SIZES
    prompts = {s: {r["prompt"] for r in rows} for s, rows in splits.items()}
    chosen = {s: {r["chosen"] for r in rows} for s, rows in splits.items()}
    for a, b in (("train", "validation"), ("train", "test"), ("validation", "test")):
        assert not prompts[a] & prompts[b], (a, b)
        assert not chosen[a] & chosen[b], (a, b)
    for rows in splits.values():
        assert len({r["prompt"] for r in rows}) == len(rows)  # one pair per prompt
        for r in rows:
            assert r["chosen"] != r["rejected"] and r["kind"] in preferences.PAIR_KINDS
            assert format_ok(r["chosen"])
            if r["kind"] == "format":
                assert not format_ok(r["rejected"])
            else:
                assert r["rejected"] not in {x["chosen"] for x in rows if x["prompt"] == r["prompt"]}
    assert {r["kind"] for r in splits["train"]} == set(preferences.PAIR_KINDS)


def test_first_sentence():
    assert preferences.first_sentence("Return x. Raise ValueError if x is e.g. negative.") == "Return x."
    assert preferences.first_sentence("Use e.g. this one.") == "Use e.g. this one."


def test_the_shipped_pairs_are_what_the_build_makes_from_the_shipped_chat_set():
    for split, n in preferences.SPLIT_SIZES.items():
        chat = read_jsonl(data_dir() / "instructions" / "chat" / f"{split}.jsonl")
        assert preferences.make_pairs(chat, n, seed=0) == preferences.preference_rows(split), split
    chat = read_jsonl(data_dir() / "instructions" / "chat" / "validation.jsonl")
    assert preferences.make_pairs(chat, 16, seed=1) != preferences.make_pairs(chat, 16, seed=0)  # the seed decides
