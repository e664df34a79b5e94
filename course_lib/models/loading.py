"""Loading the base model and its tokenizer, offline first (lesson 00).

course-tiny (data/models/course-tiny) is the default everywhere, so every lesson runs offline.
Set COURSE_MODEL to a Hugging Face model id (or pass `name=`) to run the same lessons on a
real model, e.g. on a GPU: `COURSE_MODEL=meta-llama/Llama-3.2-1B jupyter lab`.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal

from course_lib.models.base import COURSE_TINY, ModelNotAvailable, course_tiny_path, model_name
from course_lib.models.zoo import NAMED_MODELS, ensure_model

__all__ = ["resolve_model", "load_base_model", "load_tokenizer", "keep_cpu_4bit_trainable"]

_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json")


def resolve_model(name: str | None) -> str:
    """A local folder for course-tiny, a named model (converted on first use) or a path; else the hub id."""
    name = model_name(name)
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
        f"and {why}. Unset COURSE_MODEL to run each lesson on its own model, offline: {COURSE_TINY!r} in lessons "
        f"00-05 and 08, 'smollm2-135m-instruct' in lessons 06, 07 and 09 (converted once by `course get-model "
        f"smollm2-135m-instruct`). To use {name!r}, give a model folder, or download it once while online "
        f"(`hf download {name}`; gated models need `hf auth login` first) and try again. "
        f"[{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}]")


def load_tokenizer(name: str | None = None):
    """The tokenizer that belongs to `load_base_model(name)`; it always has a pad token."""
    from transformers import AutoTokenizer

    resolved = resolve_model(name)
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
    resolved = resolve_model(name)
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


def keep_cpu_4bit_trainable(model: torch.nn.Module) -> int:
    """Stop bitsandbytes repacking 4-bit weights for its CPU inference kernel, which has no backward (lesson 04).

    On a CPU with AVX512-BF16, a bitsandbytes `Linear4bit` (≥ 0.49) repacks its weight for a fast
    inference kernel the first time it runs in eval mode without gradients (e.g. during an
    evaluation), and keeps that layout. That kernel has no autograd formula: training afterwards
    only warns ("an autograd kernel was not registered") and silently drops the gradient through
    every frozen 4-bit layer, so QLoRA learns far less. CUDA is unaffected. Returns how many
    layers were changed.
    """
    import bitsandbytes as bnb

    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    for m in layers:
        m.support_avx512bf16_for_cpu = False
    return len(layers)
