"""benchmarks/cpu_throughput.py: its smoke run measures every loop and holds each against the matmul peak."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_cpu_throughput_smoke_measures_every_loop(tmp_path):
    out = tmp_path / "cpu.json"
    assert _load("cpu_throughput").main(["--smoke", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert set(r["loops"]) == {f"{m}/{loop}" for m in ("full", "lora") for loop in ("plain", "course", "trainer",
                                                                                       "sft_trainer")}
    for row in r["loops"].values():
        assert 0 < row["fraction_of_peak"] < 1.5 and row["seconds_per_step"] > 0
        assert row["trainable"] < row["parameters"] if row["method"] == "lora" else row["trainable"] == row["parameters"]
    phases = r["loops"]["full/plain"]["phase_seconds"]
    assert sum(phases.values()) <= 1.5 * r["loops"]["full/plain"]["seconds_per_step"]  # the phases make up the step
    assert r["peak_gflops"] == max(r["matmul_gflops"][str(r["machine"]["cores"])].values())


def test_committed_cpu_receipt_is_consistent():
    """The committed receipt: its fractions follow from its own FLOP counts and peak (6·N·T full, 4·N·T + 6·N_lora·T LoRA)."""
    for path in (ROOT / "benchmarks" / "results").glob("cpu-throughput-*core.json"):
        r = json.loads(path.read_text())
        tokens = r["batch"][0] * r["batch"][1]
        for row in r["loops"].values():
            n, lora = row["parameters"], row["trainable"]
            flops = (6 * n if row["method"] == "full" else 4 * n + 6 * lora) * tokens
            assert abs(flops / row["seconds_per_step"] / 1e9 / r["peak_gflops"] - row["fraction_of_peak"]) < 0.01
