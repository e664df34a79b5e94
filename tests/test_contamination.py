"""course_lib.evaluation.contamination against lm-eval's decontamination (Janitor, word_ngrams)."""

import contextlib
import io

from course_lib.evaluation.contamination import contaminated, ngram_set, ngrams, normalize, overlap_table, split_texts


def _janitor():
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):  # "C++ module" notice
        from lm_eval.decontamination.janitor import Janitor, word_ngrams
    return Janitor(), word_ngrams


def test_ngrams_are_lm_evals():
    janitor, word_ngrams = _janitor()
    for text in split_texts("chat", "test")[:40] + ["Return the `Name`, (of) the  THING!\n\nwith 13 words " * 3]:
        assert normalize(text) == janitor.normalize_string(text)
        assert ngrams(text, 13) == set(word_ngrams(janitor.normalize_string(text), 13))
        assert ngrams(text, 5) == set(word_ngrams(janitor.normalize_string(text), 5))


def test_flags_a_copied_test_row_and_not_a_fresh_one():
    train = ["one two three four five six seven eight nine ten eleven twelve thirteen fourteen"]
    index = ngram_set(train)
    leaked = "Intro: ONE two, three four five six seven eight nine ten eleven twelve thirteen!"
    fresh = "one two three four five six seven eight nine ten eleven twelve fourteen"
    short = "three four five"
    assert contaminated([leaked, fresh, short], index) == [True, False, False]
    assert contaminated([short], index, short_rows=True, train_normalized=normalize(train[0])) == [True]
    assert contaminated(["three four fiv"], index, short_rows=True, train_normalized=normalize(train[0])) == [False]


def test_overlap_table_on_the_course_data():
    table = {(r["train"], r["test"]): r for r in overlap_table()}
    # lesson 07's pairs are cut from disjoint chat splits, so a preference test row never shares a 13-gram with training pairs
    assert table[("preferences/train", "preferences/test")]["flagged"] == 0
    # the chat set is split by prompt, not by file: course-tiny's corpus holds many of its test answers
    assert table[("corpus/train", "chat/test")]["share"] > 0.2
    assert all(0 <= r["flagged"] <= r["rows"] for r in table.values())
