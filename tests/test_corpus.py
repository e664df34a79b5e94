from course_lib.data.corpus import AREAS, area_of, clean, pydoc_topics, split_of, stdlib_docstrings


def test_docstrings_are_real_prose_with_origin():
    docs = stdlib_docstrings()
    assert len(docs) > 3000
    by_name = {(d.module, d.qualname): d for d in docs}
    join = by_name[("posixpath", "join")]
    assert join.kind == "function" and join.signature.startswith("def join(")
    assert "path" in join.text.lower()
    assert all(not d.source.startswith("Lib/test/") for d in docs)


def test_topics_come_from_pydoc_data():
    topics = pydoc_topics()
    names = {d.qualname for d in topics}
    assert {"for", "if", "while"} <= names
    assert all(d.kind == "topic" for d in topics)


def test_split_is_by_file_and_stable():
    assert split_of("Lib/asyncio/queues.py") == split_of("Lib/asyncio/queues.py")
    splits = [split_of(f"Lib/m{i}.py") for i in range(2000)]
    share = {s: splits.count(s) / len(splits) for s in ("train", "validation", "heldout")}
    assert 0.75 < share["train"] < 0.85 and 0.07 < share["heldout"] < 0.13


def test_area_of_uses_top_level_module():
    assert area_of("asyncio.queues") == "concurrency"
    assert area_of("email.mime.text") == "network"
    assert area_of("tkinter") is None
    assert len(AREAS) == 6


def test_clean_normalises_whitespace():
    assert clean("a\t b  \r\n\n\n\nc ") == "a     b\n\nc"
