"""`course doctor`: what this machine can do for the course (lesson 00)."""

from __future__ import annotations

import importlib.metadata
import json
import platform
import sys

from pathlib import Path

import torch

from course_lib.data.datasets import data_dir
from course_lib.lockfile import lock_differences
from course_lib.models.base import course_tiny_path, default_model_name, get_device
from course_lib.throughput import command_threads, cpu_cores, lesson_threads, matmul_gflops

__all__ = ["doctor", "format_report", "versions_line", "bnb_4bit_works", "speed_report"]

PACKAGES = ("torch", "transformers", "peft", "bitsandbytes", "datasets", "tokenizers", "accelerate",
            "matplotlib", "ipywidgets", "jupyterlab", "nbval")


def _version(pkg: str) -> str:
    try:
        return importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def versions_line() -> str:
    """One line for the top of every notebook: Python, key packages, device."""
    keys = ("torch", "transformers", "peft", "bitsandbytes", "datasets")
    return (f"Python {platform.python_version()} | " + " | ".join(f"{k} {_version(k)}" for k in keys)
            + f" | device: {get_device().type}")


def bnb_4bit_works() -> tuple[bool, str]:
    """Whether bitsandbytes can quantize and dequantize an NF4 block on this machine's device."""
    try:
        import bitsandbytes.functional as F
        w = torch.randn(64, 64, device=get_device() if get_device().type == "cuda" else "cpu")
        q, state = F.quantize_4bit(w, blocksize=64, quant_type="nf4")
        err = (F.dequantize_4bit(q, state) - w).abs().mean().item()
        return err < 0.2, f"NF4 round trip on {w.device.type}: mean abs error {err:.3f}"
    except Exception as exc:  # any failure means "not here"; say which
        return False, f"{type(exc).__name__}: {exc}"


def speed_report(benchmark_dir: Path | None = None) -> dict:
    """This CPU's fp32 matmul rate on the commands' threads, and how long `course sft` should take here:
    the wall time measured by benchmarks/cpu_throughput.py --sft on its machine, scaled by the two matmul rates."""
    threads = command_threads()
    here = matmul_gflops(1024, 1024, 1024, threads, repeats=3, budget_s=1.0)
    report = {"threads": threads, "matmul_gflops": round(here, 1), "sft_minutes": None, "reference": None,
              "command": None}
    folder = benchmark_dir or data_dir().parent / "benchmarks" / "results"
    for path in sorted(folder.glob("cpu-throughput-*core.json")):
        ref = json.loads(path.read_text(encoding="utf-8"))
        sft = ref.get("course_sft", {}).get("wall_seconds", {})
        ref_threads = str(ref["machine"]["cores"])
        if ref_threads in sft:
            ref_rate = ref["matmul_gflops"][ref_threads]["square_1024"]
            report["sft_minutes"] = round(sft[ref_threads] * ref_rate / here / 60, 1)
            report["command"] = ref["course_sft"].get("command", "course sft")
            report["reference"] = (f"{sft[ref_threads] / 60:.1f} min measured on {ref['machine']['cpu']} with "
                                   f"{ref_threads} threads at {ref_rate:.0f} GFLOP/s ({path.name})")
    return report


def doctor() -> dict:
    """A report of versions, device, GPU memory, 4-bit support and paths."""
    device = get_device()
    report = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {p: _version(p) for p in PACKAGES},
        "device": device.type,
        "cpu_threads": torch.get_num_threads(),
        "cpu_cores": cpu_cores(),
        "threads": {"lessons": lesson_threads(), "commands": command_threads()},
        "speed": speed_report() if device.type == "cpu" else None,
        "gpu": None,
        "bnb_4bit": None,
        "data_dir": str(data_dir()),
        "model": default_model_name(),
        "course_tiny": str(course_tiny_path()),
        "course_tiny_present": (course_tiny_path() / "model.safetensors").exists(),
        "lock_differences": lock_differences(),
    }
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info()
        report["gpu"] = {"name": torch.cuda.get_device_name(0), "free_bytes": free, "total_bytes": total,
                         "capability": ".".join(map(str, torch.cuda.get_device_capability(0)))}
    ok, detail = bnb_4bit_works()
    report["bnb_4bit"] = {"works": ok, "detail": detail}
    return report


def format_report(r: dict) -> str:
    """The report as aligned lines for a person."""
    lines = [f"Python       {r['python']} on {r['platform']}"]
    lines += [f"{name:12s} {ver}" for name, ver in r["packages"].items()]
    gpu = r["gpu"]
    lines.append(f"device       {r['device']} ({r['cpu_cores']} CPU cores)")
    t = r["threads"]
    lines.append(f"threads      lessons {t['lessons']} (so their numbers repeat on any laptop), `course` commands "
                 f"{t['commands']} (--threads N, or COURSE_THREADS, sets both)")
    if r.get("speed"):
        sp = r["speed"]
        est = (f"; `{sp['command']}` ≈ {sp['sft_minutes']:.1f} min here ({sp['reference']})" if sp["sft_minutes"]
               else "; `python benchmarks/cpu_throughput.py --sft` measures how long `course sft` takes")
        lines.append(f"speed        fp32 matmul {sp['matmul_gflops']:.0f} GFLOP/s on {sp['threads']} threads{est}")
    if gpu:
        lines.append(f"GPU          {gpu['name']}: {gpu['free_bytes'] / 2**30:.1f} GiB free of "
                     f"{gpu['total_bytes'] / 2**30:.1f} GiB (compute capability {gpu['capability']})")
    else:
        lines.append("GPU          none: lessons run on the CPU; GPU-only cells say so and skip")
    lines.append(f"4-bit NF4    {'works' if r['bnb_4bit']['works'] else 'NOT available'} "
                 f"({r['bnb_4bit']['detail']})")
    lines.append(f"data         {r['data_dir']}")
    lines.append(f"model        {r['model']} (course-tiny at {r['course_tiny']}"
                 f"{'' if r['course_tiny_present'] else ' — MISSING: run `course pretrain`'})")
    drift = r["lock_differences"]
    lines += [f"versions     {d}" for d in drift] or ["versions     exactly the lock the lessons were executed with"]
    return "\n".join(lines)
