import json

import pytest

from course_lib.data.build import build_all
from course_lib.data.datasets import DATASETS, LABELS, DataFormatError, data_dir, load_course_dataset, read_jsonl


def test_every_shipped_dataset_loads_through_datasets():
    for name, (_, fields, splits) in DATASETS.items():
        ds = load_course_dataset(name)
        assert set(ds.keys()) == set(splits)
        for split in splits:
            assert len(ds[split]) > 0
            assert set(fields) <= set(ds[split].column_names)


def test_splits_are_disjoint():
    for name, key in [("classification", "text"), ("alpaca", "instruction"), ("corpus", "text")]:
        ds = load_course_dataset(name)
        seen = {}
        for split in ds:
            values = set(ds[split][key]) if name != "alpaca" else \
                {r["instruction"] + r["input"] for r in ds[split]}
            for other, vals in seen.items():
                assert not (values & vals), f"{name}: {split} and {other} share rows"
            seen[split] = values


def test_general_set_is_disjoint_from_pretraining_and_finetuning_sources():
    general = {r["source"] for r in read_jsonl(data_dir() / "general" / "test.jsonl")}
    corpus = {r["source"] for s in ("train", "validation") for r in read_jsonl(data_dir() / "corpus" / f"{s}.jsonl")}
    cls = {r["source"].rsplit(":", 1)[0] for r in read_jsonl(data_dir() / "classification" / "train.jsonl")}
    assert general and not (general & corpus) and not (general & cls)


def test_classification_labels_are_balanced_and_named():
    ds = load_course_dataset("classification", "train")
    counts = [ds["label"].count(i) for i in range(len(LABELS))]
    assert min(counts) > 0.6 * max(counts)
    assert all(LABELS[r["label"]] == r["area"] for r in ds)


def test_chat_form_mirrors_alpaca_form():
    alpaca = read_jsonl(data_dir() / "instructions" / "alpaca" / "validation.jsonl")
    chat = read_jsonl(data_dir() / "instructions" / "chat" / "validation.jsonl")
    assert len(alpaca) == len(chat)
    a, c = alpaca[0], chat[0]["messages"]
    assert [m["role"] for m in c] == ["user", "assistant"]
    assert c[0]["content"].startswith(a["instruction"]) and c[1]["content"] == a["output"]


def test_build_is_reproducible(tmp_path):
    counts = build_all(out=tmp_path)
    for name, (folder, _, splits) in DATASETS.items():
        for split in splits:
            shipped = (data_dir() / folder / f"{split}.jsonl").read_text(encoding="utf-8")
            rebuilt = (tmp_path / folder / f"{split}.jsonl").read_text(encoding="utf-8")
            assert shipped == rebuilt, f"data/{folder}/{split}.jsonl differs from what `course build-data` makes"
    assert counts["classification"]["train"] > 1000
    assert (tmp_path / "general" / "README.md").read_text().startswith("# General held-out text")


def test_malformed_row_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "ok", "label": 1}) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"bad.jsonl, line 2: not valid JSON"):
        read_jsonl(bad, {"text": str, "label": int})
    bad.write_text(json.dumps({"text": "ok", "label": "one"}) + "\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"line 1: field 'label' should be int"):
        read_jsonl(bad, {"text": str, "label": int})
    with pytest.raises(FileNotFoundError, match="course build-data"):
        read_jsonl(tmp_path / "missing.jsonl")


def test_unknown_dataset_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown dataset 'imdb'"):
        load_course_dataset("imdb")


def test_loading_leaves_the_datasets_progress_setting_as_it_found_it():
    from datasets.utils import logging as ds_logging
    try:
        for enabled in (True, False):
            (ds_logging.enable_progress_bar if enabled else ds_logging.disable_progress_bar)()
            load_course_dataset("general", "test")
            assert ds_logging.is_progress_bar_enabled() is enabled
    finally:
        ds_logging.enable_progress_bar()


def test_prompt_formats_put_the_answer_after_the_one_marker():
    from course_lib.data.datasets import RESPONSE_MARKER, area_text, instruction_text, prompt_of
    row = {"instruction": "Explain `f`.", "input": "", "output": "Returns x."}
    text = instruction_text(row)
    assert text.count(RESPONSE_MARKER) == 1 and text.endswith(RESPONSE_MARKER + "Returns x.")
    assert "\n\n\n" not in text, "an empty input adds no blank section"
    area = area_text({"text": "Open a socket.", "area": "networking"})
    assert prompt_of(area) + "networking" == area


def test_tokenized_on_demand_reads_as_tokenize_causal_and_gives_the_same_batches():
    from course_lib.data.datasets import instruction_text
    from course_lib.data.encoding import TokenizedOnDemand, tokenize_causal
    from course_lib.models.loading import load_tokenizer
    from course_lib.training.loop import shuffled_batches

    tok = load_tokenizer()
    rows = list(load_course_dataset("alpaca")["train"])[:40]
    eager = tokenize_causal(tok, [instruction_text(r) for r in rows], 32)
    lazy = TokenizedOnDemand(tok, rows, 32, text_of=instruction_text)
    assert len(lazy) == len(eager) and lazy[3] == eager[3] and lazy[-1] == eager[-1] and not lazy._done.keys() - {3, 39}
    with pytest.raises(IndexError):
        lazy[40]
    first = [next(shuffled_batches(d, 4, lambda b: [r["input_ids"] for r in b], seed=0)) for d in (eager, lazy)]
    assert first[0] == first[1] and len(lazy._done) <= 6  # only the rows drawn (and the two read above) tokenized
