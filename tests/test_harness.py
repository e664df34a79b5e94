"""course_lib.evaluation.harness: the harness runs offline (no socket is even tried), and the course's own
multiple-choice scoring and generation metrics give the harness's numbers on the same items."""

import json
import socket

import pytest
import torch

from course_lib.data.tasks import task_rows
from course_lib.evaluation.harness import choice_logprobs, choice_predictions, harness_model, run_harness, score_answer


class NetworkAttempt(AssertionError):
    pass


@pytest.fixture
def no_network(monkeypatch):
    """Every way Python opens a connection or resolves a name is recorded and refused."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args[:2])
        raise NetworkAttempt(f"network access attempted: {args[:2]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


def test_the_guard_sees_an_attempt(no_network):
    with pytest.raises(NetworkAttempt):
        socket.create_connection(("huggingface.co", 443), timeout=1)
    assert no_network


@pytest.fixture(scope="module")
def tiny_adapter(tmp_path_factory):
    """A LoRA adapter for course-tiny with a non-zero B, saved as peft saves one."""
    from peft import LoraConfig, get_peft_model

    from course_lib.models.loading import load_base_model

    torch.manual_seed(0)
    model = get_peft_model(load_base_model("course-tiny"), LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5)
    path = tmp_path_factory.mktemp("adapter")
    model.save_pretrained(path)
    return path


def test_harness_runs_offline_with_an_adapter(no_network, tiny_adapter, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    plain = run_harness(harness_model("course-tiny", batch_size=4), "docstring_choice", limit=4)
    lm = harness_model("course-tiny", peft=tiny_adapter, batch_size=4)
    assert type(lm.model).__name__ == "PeftModel"
    choice = run_harness(lm, "docstring_choice", limit=4, num_fewshot=1)
    gen = run_harness(lm, "docstring_gen", limit=2)
    assert no_network == []
    assert choice["n"] == 4 and set(choice["metrics"]) == {"acc", "acc_stderr", "acc_norm", "acc_norm_stderr"}
    assert set(gen["metrics"]) >= {"exact_match", "rouge_l", "format_ok", "rouge_l_stderr"}
    assert choice["items"][0]["prompt"].count("Docstring:") == 2  # one shot before the item
    assert plain["items"][0]["loglikelihoods"] != choice["items"][0]["loglikelihoods"]  # the adapter changed the model


def test_harness_tries_no_request_without_the_offline_variable(no_network, monkeypatch):
    """HF_HUB_OFFLINE unset (and huggingface_hub's constant, read at import, switched off too): the model is a
    local folder, so `get_model_info`'s hub lookup fails validation before any request, and no socket is tried."""
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    assert not huggingface_hub.constants.is_offline_mode()
    out = run_harness(harness_model("course-tiny", batch_size=2), "docstring_choice", limit=2)
    assert out["n"] == 2 and no_network == []


def test_choice_scoring_by_hand_is_the_harness():
    lm = harness_model("course-tiny", batch_size=4)
    out = run_harness(lm, "docstring_choice", limit=6)
    docs = task_rows("docstring_choice")
    diffs = []
    for item in out["items"]:
        doc = docs[item["doc_id"]]
        lls = choice_logprobs(lm.model, lm.tokenizer, item["prompt"], [" " + c for c in doc["choices"]])
        diffs += [abs(a - b) for a, b in zip(lls, item["loglikelihoods"])]
        pred = choice_predictions(lls, doc["choices"])
        assert float(pred["acc"] == doc["label"]) == item["acc"]
        assert float(pred["acc_norm"] == doc["label"]) == item["acc_norm"]
    assert max(diffs) < 1e-3
    per_item = [it["acc"] for it in out["items"]]
    assert out["metrics"]["acc"] == pytest.approx(sum(per_item) / len(per_item))


def test_acc_norm_divides_by_characters():
    # the longer choice has the lower sum but the higher per-character log-probability
    assert choice_predictions([-10.0, -12.0], ["short", "much longer one"]) == {"acc": 0, "acc_norm": 1}


def test_score_answer_is_lesson_06s():
    ref = "Return the name of the file."
    assert score_answer(" Return the name of the file.\n", ref) == {"exact_match": 1.0, "rouge_l": 1.0, "format_ok": 1.0}
    wrong = score_answer("The function returns a file name", ref)
    assert wrong["exact_match"] == 0.0 and 0 < wrong["rouge_l"] < 1 and wrong["format_ok"] == 0.0


def test_task_yaml_is_what_the_harness_loads():
    from lm_eval.tasks import TaskManager

    from course_lib.evaluation.harness import tasks_dir

    manager = TaskManager(include_path=str(tasks_dir()), include_defaults=False)
    assert {"docstring_choice", "docstring_gen"} <= set(manager.all_tasks)
    text = (tasks_dir() / "docstring_gen" / "docstring_gen.yaml").read_text(encoding="utf-8")
    assert "process_results: !function metrics.process_results" in text and "until: []" in text
    assert json.loads((tasks_dir() / "docstring_choice" / "test.jsonl").read_text().splitlines()[0])["label"] in range(4)
