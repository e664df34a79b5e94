"""course_lib.memory.zero: ZeRO stages against DeepSpeed's own estimators (lesson 08)."""

import contextlib
import io
import json
import re

import pytest

from course_lib.memory.vram import PRESETS, ModelShape, VramConfig, activation_bytes
from course_lib.memory.zero import (cards_needed, deepspeed_estimate,
                             largest_layer_parameters, model_states_per_gpu, zero_paper_bytes_per_gpu)

L7, L70 = PRESETS["llama-2-7b"], PRESETS["llama-2-70b"]


@pytest.mark.parametrize("name", ["llama-2-7b", "llama-2-70b"])
@pytest.mark.parametrize("stage", [2, 3])
@pytest.mark.parametrize("gpus", range(2, 9))
def test_within_5_percent_of_deepspeed(name, stage, gpus):
    ours = model_states_per_gpu(PRESETS[name], stage, gpus).total
    _, theirs = deepspeed_estimate(PRESETS[name], stage, gpus)
    assert abs(ours / theirs - 1) <= 0.05


def test_deepspeed_all_cold_prints_the_same_figures():
    """The functions deepspeed_estimate calls are what the documented *_all_cold functions print (in GiB)."""
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs_all_cold
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs_all_cold

    for stage, fn, args in ((2, estimate_zero2_model_states_mem_needs_all_cold, (L7.parameters,)),
                            (3, estimate_zero3_model_states_mem_needs_all_cold,
                             (L7.parameters, largest_layer_parameters(L7)))):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            fn(*args, num_gpus_per_node=4)
        row = [line for line in out.getvalue().splitlines() if "offload_optimizer=none" in line][0]
        printed = float(re.findall(r"([\d.]+)GB", row)[1])  # per CPU | per GPU
        assert printed == round(model_states_per_gpu(L7, stage, 4).total / 2**30, 2)


@pytest.mark.parametrize("vocab, tied", [(100, False), (100, True), (40, False)])  # 40: an MLP matrix is the largest
def test_shape_counts_match_deepspeeds_walk_of_a_real_model(tiny_llama, vocab, tied):
    """DeepSpeed counts parameters and the largest layer from modules; ours from the shape alone."""
    from deepspeed.runtime.zero.stage3 import model_to_params

    model = tiny_llama(hidden_size=32, layers=2, vocab_size=vocab, tie_word_embeddings=tied)
    cfg = model.config
    shape = ModelShape(cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers, cfg.num_attention_heads,
                       cfg.num_key_value_heads, cfg.vocab_size, cfg.tie_word_embeddings)
    assert model_to_params(model) == (shape.parameters, largest_layer_parameters(shape))


def test_each_stage_shards_what_the_paper_says():
    n = L7.parameters
    s0, s1, s2, s3 = (model_states_per_gpu(L7, s, 8) for s in range(4))
    assert s0.total == 20 * n  # 2 + 2 + 16, nothing divided
    assert (s1.parameters, s1.gradients, s1.optimizer_states) == (2 * n, 2 * n, 16 * n // 8)
    assert (s2.parameters, s2.gradients) == (2 * n, 2 * n // 8)
    assert s3.parameters == 2 * n // 8 and s3.gathered == 4 * 131_072_000  # the embedding, gathered whole
    assert s0.total > s1.total > s2.total > s3.total
    assert model_states_per_gpu(L7, 3, 1).total > model_states_per_gpu(L7, 0, 1).total - 3 * n  # no free lunch on 1


def test_paper_figure_1():
    """ZeRO paper, Figure 1: 7.5B parameters, 64 GPUs, K = 12: 120, 31.4, 16.6, 1.9 GB."""
    got = [round(zero_paper_bytes_per_gpu(7.5e9, s, 64) / 1e9, 1) for s in range(4)]
    assert got == [120.0, 31.4, 16.6, 1.9]


def test_cards_needed_for_7b_on_24_gb():
    card = 24 * 2**30
    assert cards_needed(L7, 0, card) is None and cards_needed(L7, 1, card) is None  # 2 + 2 bytes alone: 27 GB
    n2, n3 = cards_needed(L7, 2, card), cards_needed(L7, 3, card)
    assert n3 < n2
    cfg = VramConfig(method="full", precision="mixed", gradient_checkpointing=True)
    for stage, n in ((2, n2), (3, n3)):  # the answer fits, one card fewer does not
        per = activation_bytes(L7, cfg).saved + cfg.overhead_bytes
        fits, one_fewer = (model_states_per_gpu(L7, stage, g).total + per for g in (n, n - 1))
        assert fits <= card < one_fewer


@pytest.mark.parametrize("stage, gpus", [(4, 2), (-1, 2), (2, 0), (2, 1.5), (2, True)])
def test_invalid_stage_or_gpus(stage, gpus):
    with pytest.raises(ValueError):
        model_states_per_gpu(L7, stage, gpus)


def test_cli_zero_json(capsys):
    from course_lib.cli import main

    assert main(["vram", "--model", "llama-2-70b", "--num-gpus", "8", "--zero-stage", "3", "--json"]) == 0
    j = json.loads(capsys.readouterr().out)
    assert j["model_states_bytes"] == deepspeed_estimate(L70, 3, 8)[1]
    assert j["total_bytes"] == j["model_states_bytes"] + j["activations_bytes"] + j["overhead_bytes"]


def test_cli_num_gpus_without_stage_is_one_line_error(capsys):
    from course_lib.cli import main

    assert main(["vram", "--num-gpus", "4"]) == 2
    assert "--zero-stage" in capsys.readouterr().err
