"""What every model-using module needs before a model loads: the model's name, the device, seeds, threads.

`model_name` is the one place a run's model is decided: an explicit name, else $COURSE_MODEL, else a
default (course-tiny, or a lesson's own model such as lesson 06's smollm2-135m-instruct).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from course_lib.data.datasets import data_dir

__all__ = ["COURSE_TINY", "ModelNotAvailable", "model_name", "default_model_name", "course_tiny_path", "get_device",
           "set_seed", "set_threads", "count_parameters"]

COURSE_TINY = "course-tiny"


class ModelNotAvailable(RuntimeError):
    """The requested model is neither shipped, cached, nor reachable."""


def set_threads(n: int | None = None) -> int:
    """Use `n` CPU threads ($COURSE_THREADS, else 1); returns the count (every lesson's first cell).

    One thread by default: course-tiny's small matrices gain little from more, two jobs on two
    cores stop thrashing, and a fixed count makes every printed number repeat bit for bit on any
    laptop, so a lesson's stored outputs match what a student gets.
    """
    n = n or int(os.environ.get("COURSE_THREADS") or 1)
    torch.set_num_threads(n)
    return n


def course_tiny_path() -> Path:
    return data_dir() / "models" / COURSE_TINY


def model_name(name: str | None = None, default: str = COURSE_TINY) -> str:
    """The model a run uses: `name` if given, else $COURSE_MODEL, else `default` (the one resolver)."""
    return name or os.environ.get("COURSE_MODEL") or default


def default_model_name() -> str:
    """COURSE_MODEL if set, else course-tiny."""
    return model_name()


def get_device() -> torch.device:
    """CUDA if present, then Apple's MPS, then the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices), so a run repeats exactly on one machine."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def count_parameters(model: torch.nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (each tied tensor counted once)."""
    seen, total = set(), 0
    for p in model.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.numel()
    return total
