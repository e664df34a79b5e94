"""Loading the base model, choosing a device, seeding (lesson 00).

course-tiny (data/models/course-tiny) is the default everywhere, so every lesson runs offline.
Set COURSE_MODEL to a Hugging Face model id (or pass `name=`) to run the same lessons on a
real model, e.g. on a GPU: `COURSE_MODEL=meta-llama/Llama-3.2-1B jupyter lab`.
"""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from course_lib.data.datasets import data_dir

__all__ = ["COURSE_TINY", "default_model_name", "load_base_model", "load_tokenizer", "get_device",
           "set_seed", "set_threads", "ModelNotAvailable", "count_parameters", "course_tiny_path"]

COURSE_TINY = "course-tiny"

_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json")


class ModelNotAvailable(RuntimeError):
    """The requested model is neither shipped, cached, nor reachable."""


def set_threads(n: int | None = None) -> int:
    """Use `n` CPU threads ($COURSE_THREADS, else 1); returns the count (every lesson's first cell).

    One thread by default: course-tiny's small matrices gain little from more, two jobs on two
    cores stop thrashing, and a fixed count makes every printed number repeat bit for bit on any
    laptop, so a lesson's stored outputs match what a student gets.
    """
    n = n or int(os.environ.get("COURSE_THREADS", "1"))
    torch.set_num_threads(n)
    return n


def course_tiny_path() -> Path:
    return data_dir() / "models" / COURSE_TINY


def default_model_name() -> str:
    """COURSE_MODEL if set, else course-tiny."""
    return os.environ.get("COURSE_MODEL") or COURSE_TINY


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


def _resolve(name: str | None) -> str:
    """A local folder for course-tiny, a named model (converted on first use) or a path; else the hub id."""
    from course_lib.models.zoo import NAMED_MODELS, ensure_model  # here: model_zoo imports this module

    name = name or default_model_name()
    if name in NAMED_MODELS:
        return str(ensure_model(name))
    if name == COURSE_TINY:
        path = course_tiny_path()
        missing = [f for f in _REQUIRED_FILES if not (path / f).exists()]
        if missing:
            raise ModelNotAvailable(
                f"The course model folder {path} is missing {', '.join(missing)}. Restore it with "
                "`git checkout -- data/models/course-tiny` or rebuild it with `course pretrain`.")
        return str(path)
    return name


def _hub_reachable(timeout: float = 2.0) -> bool:
    """Whether a TCP connection to the hub (or the HTTPS proxy) opens within `timeout` seconds."""
    from urllib.parse import urlsplit

    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    url = urlsplit(proxy or os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        socket.create_connection((url.hostname or "", url.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _hub_kwargs(resolved: str) -> dict:
    """`local_files_only=True` for a hub id when offline or the hub is unreachable: the cache or a fast error.

    Without it, huggingface_hub retries an unreachable hub for most of a minute before failing.
    """
    if Path(resolved).is_dir() or os.environ.get("HF_HUB_OFFLINE", "0").upper() in ("1", "ON", "YES", "TRUE"):
        return {}  # a folder needs no hub; HF_HUB_OFFLINE already keeps transformers off the network
    return {} if _hub_reachable() else {"local_files_only": True}


def _not_available(name: str, exc: Exception, offline: bool = False) -> ModelNotAvailable:
    why = ("the hub could not be reached" if offline else
           f"the hub could not provide it (HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', '0')})")
    return ModelNotAvailable(
        f"Could not load the model {name!r}: it is not a folder here, not in the Hugging Face cache, "
        f"and {why}. The course runs offline on its own model: unset "
        f"COURSE_MODEL (or pass name=None) to use {COURSE_TINY!r}, which ships in "
        f"{course_tiny_path()}. To use {name!r}, download it once while online "
        f"(`hf download {name}`; gated models need `hf auth login` first) and try again. "
        f"[{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}]")


def load_tokenizer(name: str | None = None):
    """The tokenizer that belongs to `load_base_model(name)`; it always has a pad token."""
    from transformers import AutoTokenizer

    resolved = _resolve(name)
    hub = _hub_kwargs(resolved)
    try:
        tok = AutoTokenizer.from_pretrained(resolved, **hub)
    except (OSError, ValueError) as exc:
        raise _not_available(resolved, exc, offline=bool(hub)) from None
    if tok.pad_token is None:  # many causal LMs ship without one; reuse end-of-sequence
        tok.pad_token = tok.eos_token
    return tok


def load_base_model(name: str | None = None,
                    task: Literal["causal-lm", "classification"] = "causal-lm",
                    num_labels: int | None = None,
                    **kwargs):
    """Load course-tiny (default), or `name` / $COURSE_MODEL, as a causal LM or a classifier.

    With task="classification" the body is pretrained and the head (`score`) is new and random.
    Extra keyword arguments go to `from_pretrained` (e.g. `quantization_config`, `dtype`).
    """
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    if task not in ("causal-lm", "classification"):
        raise ValueError(f"task must be 'causal-lm' or 'classification', not {task!r}.")
    if task == "classification" and not num_labels:
        raise ValueError("task='classification' needs num_labels (how many classes the new head predicts).")
    resolved = _resolve(name)
    cls = AutoModelForCausalLM if task == "causal-lm" else AutoModelForSequenceClassification
    if task == "classification":
        kwargs["num_labels"] = num_labels
    hub = _hub_kwargs(resolved)
    if hub:  # transformers does not pass local_files_only on to its adapter-config lookup
        kwargs["adapter_kwargs"] = {**hub, **kwargs.get("adapter_kwargs", {})}
    try:
        model = cls.from_pretrained(resolved, **{**hub, **kwargs})
    except OSError as exc:
        raise _not_available(resolved, exc, offline=bool(hub)) from None
    except Exception as exc:  # a corrupt safetensors file or config surfaces as many types
        if Path(resolved).is_dir():
            raise ModelNotAvailable(
                f"The model folder {resolved} could not be read ({type(exc).__name__}: {exc}). "
                "Restore it with `git checkout -- data/models/course-tiny` or rebuild it with "
                "`course pretrain`.") from None
        raise
    if task == "classification" and model.config.pad_token_id is None:
        # The classifier pools the last non-padding token, so it must know the pad id.
        model.config.pad_token_id = model.config.eos_token_id
    return model
