import shutil
import subprocess
import sys

import pytest
import torch

import course_lib.models.base as base
import course_lib.models.loading as models
from course_lib.models.base import ModelNotAvailable, count_parameters, get_device, set_seed
from course_lib.models.loading import load_base_model, load_tokenizer


def test_course_tiny_is_a_pretrained_llama():
    model = load_base_model()
    assert type(model).__name__ == "LlamaForCausalLM"
    assert 1e6 < count_parameters(model) < 5e6
    tok = load_tokenizer()
    assert tok.pad_token is not None and tok.bos_token == "<s>"


def test_classification_gets_a_new_head_and_pad_id():
    model = load_base_model(task="classification", num_labels=6)
    assert model.score.out_features == 6
    assert model.config.pad_token_id is not None


def test_bad_task_and_missing_labels_are_clear():
    with pytest.raises(ValueError, match="task must be"):
        load_base_model(task="seq2seq")
    with pytest.raises(ValueError, match="num_labels"):
        load_base_model(task="classification")


def test_unknown_hub_model_offline_gives_one_paragraph(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotAvailable) as info:
        load_base_model("someone/no-such-model-xyz")
    message = str(info.value)
    assert "course-tiny" in message and "COURSE_MODEL" in message and "\n" not in message


def test_course_model_env_is_honoured(monkeypatch):
    monkeypatch.setenv("COURSE_MODEL", "someone/no-such-model-xyz")
    with pytest.raises(ModelNotAvailable, match="no-such-model-xyz"):
        load_base_model()


def test_missing_or_corrupt_model_folder_names_the_folder(tmp_path, monkeypatch):
    folder = tmp_path / "models" / "course-tiny"
    shutil.copytree(base.course_tiny_path(), folder)
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelNotAvailable, match="could not be read"):
        load_base_model()
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelNotAvailable, match="missing model.safetensors"):
        load_base_model()


def test_seed_repeats():
    set_seed(3)
    a = torch.randn(4)
    set_seed(3)
    assert torch.equal(a, torch.randn(4))


@pytest.mark.parametrize("cuda, mps, expected", [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")])
def test_device_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert get_device().type == expected


def test_threads_are_set_explicitly_not_at_import(monkeypatch):
    code = ("import pkgutil, importlib, torch, course_lib; torch.set_num_threads(2); "
            "[importlib.import_module(m.name) for m in pkgutil.walk_packages(course_lib.__path__, 'course_lib.')]; "
            "print(torch.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "2", "importing course_lib must not change torch's thread count"
    previous = torch.get_num_threads()
    try:
        monkeypatch.setenv("COURSE_THREADS", "3")
        assert base.set_threads() == 3 == torch.get_num_threads()
        assert base.set_threads(1) == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)
