"""The errors a student meets first: an unreachable hub (course_lib.models.loading), an odd data file (course_lib.data.datasets)."""

from __future__ import annotations

import json
import socket
import time

import pytest

import course_lib.models.loading as models
from course_lib.data.datasets import DataFormatError, load_course_dataset, read_jsonl
from course_lib.models.base import ModelNotAvailable
from course_lib.models.loading import load_base_model, load_tokenizer


@pytest.fixture
def closed_port() -> int:
    """A local port nothing listens on: connecting is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_hub_probe_sees_a_listening_endpoint_and_a_closed_one(monkeypatch, closed_port):
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.delenv("https_proxy", raising=False)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        assert models._hub_reachable() is True
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port}")
    assert models._hub_reachable() is False


@pytest.mark.parametrize("load", [load_base_model, load_tokenizer])
def test_unreachable_hub_fails_fast_with_the_current_command(monkeypatch, closed_port, load):
    """Without HF_HUB_OFFLINE, huggingface_hub used to retry for ~49 s before this error."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.delenv("https_proxy", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port}")
    monkeypatch.setenv("COURSE_MODEL", "someone/no-such-model-xyz")
    start = time.perf_counter()
    with pytest.raises(ModelNotAvailable) as info:
        load()
    seconds = time.perf_counter() - start
    message = str(info.value)
    assert seconds < 15, f"took {seconds:.1f} s: the hub is being retried"
    assert "`hf download someone/no-such-model-xyz`" in message
    assert "huggingface-cli" not in message  # removed from recent huggingface_hub releases
    assert "could not be reached" in message and "\n" not in message


def test_hub_probe_is_skipped_for_folders_and_when_offline(monkeypatch, tmp_path):
    monkeypatch.setattr(models, "_hub_reachable", lambda timeout=2.0: pytest.fail("probed the hub"))
    assert models._hub_kwargs(str(tmp_path)) == {}
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert models._hub_kwargs("someone/model") == {}
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(models, "_hub_reachable", lambda timeout=2.0: False)
    assert models._hub_kwargs("someone/model") == {"local_files_only": True}


def test_a_utf8_bom_is_accepted(tmp_path, monkeypatch):
    rows = [{"text": "héllo", "source": "a.py"}, {"text": "bye", "source": "b.py"}]
    folder = tmp_path / "general"
    folder.mkdir()
    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    (folder / "test.jsonl").write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))  # as Notepad saves it
    assert read_jsonl(folder / "test.jsonl", {"text": str, "source": str}) == rows
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    ds = load_course_dataset("general", "test")
    assert ds.column_names == ["text", "source"] and ds[0] == rows[0]


def test_invalid_json_message_ends_in_a_whole_sentence(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok", "label": 1}\n{"text": "a\tb", "label": 2}\n', encoding="utf-8")
    with pytest.raises(DataFormatError) as info:
        read_jsonl(bad, {"text": str, "label": int})
    message = str(info.value)
    assert "line 2: not valid JSON (Invalid control character, column 12)" in message, message
    assert " at)" not in message and " at;" not in message
