"""`course memory` (course_lib/experiments/memory.py): what it measures matches what `course vram` counts."""

import pytest

from course_lib.experiments.memory import MemoryConfig, build_model, bytes_by_dtype, measure_method, vram_config
from course_lib.memory.vram import PRESETS, estimate_memory


def test_full_fine_tuning_footprint_and_tensor_peak_match_the_estimate():
    config = MemoryConfig(model="course-tiny", methods=["full"], max_steps=2, per_device_train_batch_size=2,
                          seq_len=32)
    r = measure_method(config, "full")
    est = estimate_memory(PRESETS["course-tiny"], vram_config(config, "full"))
    assert r["footprint_bytes"] - est.weights == 128  # bf16: 2 bytes per parameter, + the rotary inv_freq buffer
    assert r["tracked_peak_bytes"] == pytest.approx(est.peak, rel=0.05)
    assert r["train_peak_bytes"] > 0 and len(r["step_seconds"]) == 2


def test_qlora_stores_decoder_linears_in_4_bits_and_casts_the_rest_to_fp32():
    dtypes = bytes_by_dtype(build_model("course-tiny", "qlora"))
    shape = PRESETS["course-tiny"]
    assert dtypes["uint8"] == shape.linear_parameters // 2  # two NF4 codes per byte
    assert "bfloat16" not in dtypes  # prepare_model_for_kbit_training: embeddings and norms in float32


def test_unknown_method_is_one_clear_error():
    with pytest.raises(ValueError, match="unknown method"):
        build_model("course-tiny", "dora")
