"""course_lib.training.distributed: per-process memory accounting, the data split, launching (lesson 08)."""

import pytest
import torch

from course_lib.training.sizing import COURSE_TINY_PARAMS
from course_lib.training.distributed import (DistributedConfig, DistributedRunFailed, compare_runs, launch, process_memory,
                                    training_batches)


def test_process_memory_counts_parameters_gradients_and_adam_states_once(tiny_llama):
    model = tiny_llama(hidden_size=16, layers=2, vocab_size=64, tie_word_embeddings=True)
    n = sum(p.numel() for p in dict.fromkeys(model.parameters()))  # the tied embedding once
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    assert process_memory(model, opt).total == 4 * n  # no gradients, no states before the first step
    ids = torch.randint(0, 64, (2, 8))
    model(input_ids=ids, labels=ids).loss.backward()
    opt.step()
    mem = process_memory(model, opt)
    tensors = len(list(dict.fromkeys(model.parameters())))
    assert (mem.parameters, mem.gradients) == (4 * n, 4 * n)
    assert mem.optimizer_states == 8 * n + 4 * tensors  # m and v in fp32, plus one fp32 step count per tensor


def test_training_batches_are_full_sequences_and_repeat():
    config = DistributedConfig(max_steps=2, global_batch_size=4, seq_len=16)
    a, b = training_batches(config), training_batches(config)
    assert a.shape == (2, 4, 16) and torch.equal(a, b)


def test_compare_runs_finds_the_worst_tensor():
    a = {"losses": [1.0, 2.0], "weights": {"x": torch.zeros(3), "y": torch.zeros(2)}}
    b = {"losses": [1.0, 2.5], "weights": {"x": torch.tensor([0.0, 1e-3, 0.0]), "y": torch.zeros(2)}}
    assert compare_runs(a, b) == {"max_abs_loss_diff": 0.5, "max_abs_weight_diff": pytest.approx(1e-3),
                                  "worst_tensor": "x"}
    with pytest.raises(ValueError):  # runs of different lengths are not comparable
        compare_runs(a, {**b, "losses": [1.0]})


def test_one_process_run_writes_losses_and_memory():
    r = launch(DistributedConfig(max_steps=2, global_batch_size=2, seq_len=16), num_processes=1)
    assert r["num_processes"] == 1 and len(r["losses"]) == 2 and r["allreduce_seconds"] == [0.0, 0.0]
    assert r["memory"][0]["parameters"] == 4 * COURSE_TINY_PARAMS and "model.embed_tokens.weight" in r["weights"]


@pytest.mark.slow
def test_a_failing_process_is_one_clear_error():
    with pytest.raises(DistributedRunFailed, match="does not split evenly over 2 processes"):
        launch(DistributedConfig(max_steps=1, global_batch_size=3, seq_len=16), num_processes=2)
