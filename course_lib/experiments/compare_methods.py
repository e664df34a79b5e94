"""`course compare-methods` (lesson 11): eleven fine-tuning methods and four no-training baselines, side by side.

Every method (course_lib.tuning.methods) trains the same rows of lesson 06's task, in the same batches, for
the same number of steps (lesson 06's budget by default: 24 steps of 4 rows from 32 rows). Each gets its own
learning rate from a sweep at the first seed, chosen on the validation rows' response NLL: three rates one
rung apart on a ladder (1e-5, 3e-5, 1e-4, …), and one more rung past an edge for as long as the best rate sits
at that edge (at most `--max_extend` more), so that the chosen rate is interior to its sweep or said not to be.
At the chosen rate the methods of `--seeded_methods` run every seed; the others run the first seed only
(pointers, without a seed interval). Every run at the chosen rate is scored on the test rows: the response
NLL of each row (kept per row, so that any two arms can be compared item by item with
`course_lib.evaluation.uncertainty.seeds_by_items_difference`), greedy answers to the first rows (ROUGE-L and
format per row) and lesson 05's retention probe (the change of log-probability of each general question's
old answer, per question).

The costs are measured apart from the training runs, in one process, method after method (`costs`): the
trainable parameters, the adapter's bytes on disk (PiSSA's also as the plain LoRA it converts to), the tensor
peak of a training step (lesson 04's MemTracker) beside `course vram`'s prediction where its estimator covers
the method, and then `--timing_rounds` rounds, each timing every method in turn (interleaved, so that a change
of the machine's load hits every method alike): seconds per training step and the latency of one answer,
unmerged and merged; the medians over the rounds are the table's. The no-training baselines answer the same test
questions zero-shot, few-shot, with BM25-retrieved examples from the training rows, and zero-shot on the NF4
base (QLoRA's starting point, without an adapter).

Each run is kept in data/checkpoints/compare_methods/runs.json as it finishes; `course compare-methods --resume`
(same options) continues from there. The results file records each process that worked on it (`processes`: its
command, the git commit, wall and CPU seconds). A run split over several commands with `--out` is put together
by `course compare-methods --merge a.json b.json …`, which records every part's processes the same way.
"""

from __future__ import annotations

import gc
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

from course_lib.commands.vram import VramArgs
from course_lib.data.datasets import data_dir, format_ok
from course_lib.evaluation.uncertainty import seeds_by_items, seeds_by_items_difference
from course_lib.forgetting.generation import (GENERAL_PROMPTS, RetentionReference, answer_logprob, greedy_ids,
                                              retention_reference)
from course_lib.memory.memtrack import track_model_steps
from course_lib.memory.vram import VramConfig, estimate_memory, shape_of
from course_lib.metrics import rouge_l
from course_lib.models.base import get_device, model_name, set_seed
from course_lib.models.loading import load_base_model, load_tokenizer
from course_lib.results import command_line, results_name, save_results
from course_lib.tuning.methods import (METHOD_NAMES, PROMPT_LEARNING, CachelessGreedy, MethodSpec, TrimVirtualTokens,
                                       VirtualTokenGreedy, build_method, nf4_base, place, trainable_parameters,
                                       training_batches, train_steps)
from course_lib.tuning.prompting import Retriever, few_shot_row, prompt_tokens, question
from course_lib.tuning.sft import dir_bytes, greedy_answer_ids, answers_and_cuts, pad_batch, prompt_for, quiet_command, task_rows

__all__ = ["LR_LADDER", "START_LR", "REFERENCE", "TIE_MARGIN", "CompareConfig", "VRAM_METHOD", "prepared", "row_nlls",
           "sweep_rates", "sweep_status", "baselines", "costs", "method_runs", "compare_methods", "method_table",
           "versus", "checkpoints_dir", "merge_results", "git_commit", "COMMANDS"]

# The learning-rate ladder: each sweep starts at three consecutive rungs around a method's usual rate (papers' and
# peft's examples) and climbs further while its best rate is at an edge.
LR_LADDER = (1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)
START_LR = {"full": 3e-5, "lora": 1e-3, "rslora": 3e-4, "dora": 1e-3, "pissa": 1e-4, "qlora": 1e-3,
            "adalora": 1e-2,  # E starts at 0 and A, B at std 0.02 (peft): ΔW grows ∝ lr, so it needs ≥ 1e-2 when short
            "glora": 1e-3, "ia3": 1e-2, "prompt_tuning": 3e-2, "prefix_tuning": 1e-2}
REFERENCE = "lora"  # every arm is compared with this one, item by item
TIE_MARGIN = 0.05  # nats per response token (5 % perplexity): a difference whose whole interval lies inside ±this is a tie
VRAM_METHOD = {"full": "full", "lora": "lora", "rslora": "lora", "pissa": "lora", "qlora": "qlora"}  # the rest:
# DoRA's magnitude, AdaLoRA's SVD form, GLoRA's effective weight, IA3 and virtual tokens are outside the estimator
# the reference and the seeded methods first: a run cut short has what the comparison needs most
RUN_ORDER = ("lora", "full", "dora", "qlora", "ia3", "prompt_tuning", "pissa", "rslora", "adalora", "glora",
             "prefix_tuning")
BASELINES = ("zero_shot", "few_shot", "retrieval_few_shot", "zero_shot_nf4")


@dataclass
class CompareConfig:
    """What `course compare-methods` runs."""

    model: str = field(default="smollm2-135m-instruct", metadata={"help": "a chat model (lesson 06's task)"})
    methods: list[str] = field(default_factory=lambda: list(RUN_ORDER), metadata={"help": "which methods, in the "
                                                                                   "order they run"})
    seeded_methods: list[str] = field(default_factory=lambda: ["full", "lora", "dora", "qlora", "ia3",
                                                               "prompt_tuning"],
                                      metadata={"help": "the methods run at every seed; the others run the first "
                                                        "seed only (pointers without a seed interval); 'all' = every"})
    train_rows: int = field(default=32, metadata={"help": "training rows (and the retrieval pool of the baselines)"})
    eval_rows: int = field(default=16, metadata={"help": "validation rows: the learning rate is chosen on them"})
    test_rows: int = field(default=32, metadata={"help": "test rows: the response NLL of each, every run"})
    generate_rows: int = field(default=8, metadata={"help": "the first of the test rows answered greedily "
                                                            "(ROUGE-L, format rate), every run at the chosen rate"})
    max_steps: int = field(default=24, metadata={"help": "optimizer steps per run (the same for every method)"})
    per_device_train_batch_size: int = field(default=4, metadata={"help": "rows per step"})
    max_length: int = field(default=192, metadata={"help": "tokens per training row at most"})
    r: int = field(default=8, metadata={"help": "rank of the LoRA family (AdaLoRA: its final average rank)"})
    num_virtual_tokens: int = field(default=8, metadata={"help": "prompt and prefix tuning's virtual tokens"})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "the first one runs the sweep"})
    lr_scale: float = field(default=1.0, metadata={"help": "multiplies every starting learning rate"})
    max_extend: int = field(default=3, metadata={"help": "rungs a sweep may add past an edge, at most"})
    max_new_tokens: int = field(default=24, metadata={"help": "greedy tokens per test answer (lesson 06's cap)"})
    retention_prompts: int = field(default=16, metadata={"help": "lesson 05's general questions for forgetting"})
    few_shot_k: int = field(default=2, metadata={"help": "examples in a few-shot prompt"})
    baselines: bool = field(default=True, metadata={"help": "also answer zero-shot, few-shot, retrieval few-shot "
                                                            "and zero-shot on the NF4 base"})
    costs: bool = field(default=True, metadata={"help": "measure sizes, memory, seconds per step and latency"})
    timing_rounds: int = field(default=3, metadata={"help": "rounds of timing, every method once per round"})
    timing_steps: int = field(default=3, metadata={"help": "timed training steps per method and round (after "
                                                           "one untimed)"})
    latency_tokens: int = field(default=8, metadata={"help": "new tokens of the latency measurement"})
    out: str = field(default="", metadata={"help": "results file; '' = data/results/compare_methods.json"})
    resume: bool = field(default=False, metadata={"help": "keep the runs an interrupted run finished "
                                                          "(data/checkpoints/compare_methods); same options"})
    merge: list[str] = field(default_factory=list, metadata={"help": "results files of parts (each written with "
                                                                     "--out) to put together into one; nothing runs"})

    def spec(self) -> MethodSpec:
        return MethodSpec(r=self.r, lora_alpha=2.0 * self.r, num_virtual_tokens=self.num_virtual_tokens,
                          total_steps=self.max_steps)

    def seeded(self, method: str) -> bool:
        return "all" in self.seeded_methods or method in self.seeded_methods

    def validate(self) -> None:
        unknown = [m for m in self.methods + [m for m in self.seeded_methods if m != "all"] if m not in METHOD_NAMES]
        if unknown:
            raise ValueError(f"unknown method {unknown[0]!r}: choose from {', '.join(METHOD_NAMES)}.")
        if min(self.max_steps, self.train_rows, self.eval_rows, self.test_rows, len(self.seeds)) <= 0:
            raise ValueError("--max_steps, --train_rows, --eval_rows, --test_rows and --seeds must be positive.")
        if self.generate_rows > self.test_rows:
            raise ValueError("--generate_rows must be at most --test_rows (the answers are to the first test rows).")


def checkpoints_dir(out: str = "") -> Path:
    """Where the finished runs wait until the command ends (git-ignored): what --resume keeps; one folder
    per results file, so two runs writing different files (a split of the methods) do not meet."""
    return data_dir() / "checkpoints" / ("compare_methods" + (f"-{Path(out).stem}" if out else ""))


def git_commit() -> dict:
    """The repository's commit and whether course_lib/ has uncommitted changes (None outside a git checkout)."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "course_lib"], cwd=root, capture_output=True,
                               text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "course_lib_changed": None}
    return {"commit": head.stdout.strip(), "course_lib_changed": bool(dirty.stdout.strip())}


# ---------------------------------------------------------------- scoring

def prepared(model, method: str):
    """The model as lesson 06's metrics call it: prompt tuning's virtual-token logits cut off; prompt and prefix
    tuning decoded by `methods.VirtualTokenGreedy` (peft's `generate` is broken for both in the installed
    versions: the class's docstring says how)."""
    if method == "prompt_tuning":
        return TrimVirtualTokens(model)
    return VirtualTokenGreedy(model) if method == "prefix_tuning" else model


@torch.no_grad()
def row_nlls(model, tokenizer, rows, batch_size: int = 8) -> list[float]:
    """Each row's response NLL (nats per token of its reference answer, after its chat prompt): lesson 06's
    `response_nll`, per row, so that two arms can be compared item by item."""
    examples = []
    for row in rows:
        prompt = tokenizer(prompt_for(tokenizer, row), add_special_tokens=False)["input_ids"]
        answer = tokenizer(row["messages"][-1]["content"], add_special_tokens=False)["input_ids"]
        examples.append({"input_ids": prompt + answer, "labels": [-100] * len(prompt) + answer})
    was_training, device = model.training, next(model.parameters()).device
    model.eval()
    out = []
    for i in range(0, len(examples), batch_size):
        batch = {k: v.to(device) for k, v in pad_batch(examples[i:i + batch_size], tokenizer.pad_token_id).items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
        targets = batch["labels"][:, 1:]
        nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), targets, ignore_index=-100,
                                                reduction="none")  # (B, T-1), 0 where ignored
        counts = (targets != -100).sum(1)
        out += (nll.sum(1) / counts).tolist()
    model.train(was_training)
    return [round(x, 5) for x in out]


def _nll_entry(nlls: list[float]) -> dict:
    mean = statistics.fmean(nlls)
    return {"nll_rows": nlls, "response_nll": round(mean, 5), "response_ppl": round(math.exp(mean), 3)}


def answer_rows(model, tokenizer, rows, max_new_tokens: int) -> dict:
    """Greedy answers to `rows` (one at a time), and per row ROUGE-L and the format check (lesson 06's metrics)."""
    ids = greedy_answer_ids(model, tokenizer, [prompt_for(tokenizer, r) for r in rows], max_new_tokens)
    answers, cut = answers_and_cuts(tokenizer, ids, max_new_tokens)
    refs = [r["messages"][-1]["content"] for r in rows]
    return {"answers": answers, "rouge_rows": [round(rouge_l([a], [r]), 4) for a, r in zip(answers, refs)],
            "format_rows": [int(format_ok(a)) for a in answers], "truncated": sum(cut)}


def retention_rows(model, tokenizer, reference: RetentionReference) -> dict:
    """Lesson 05's retention probe, per question: whether the greedy answer is still the old one, and the change
    of the old answer's log-probability (nats per token; < 0: it became less likely)."""
    kept, change = [], []
    for prompt, ref, before in zip(reference.prompts, reference.answers, reference.logprobs):
        kept.append(int(greedy_ids(model, tokenizer, prompt, len(ref)) == ref))
        change.append(round(answer_logprob(model, prompt, ref) - before, 5))
    return {"kept_rows": kept, "logprob_change_rows": change}


def _reference_dict(ref: RetentionReference) -> dict:
    return asdict(ref)


# ---------------------------------------------------------------- learning rates

def _rung(lr: float) -> int:
    return min(range(len(LR_LADDER)), key=lambda i: abs(math.log(LR_LADDER[i] / lr)))


def sweep_rates(method: str, lr_scale: float = 1.0) -> list[float]:
    """The three starting rates of `method`'s sweep: its usual rate and the rungs on either side."""
    i = _rung(START_LR[method])
    return [LR_LADDER[j] * lr_scale for j in (i - 1, i, i + 1)]


def sweep_status(sweep: dict[float, float]) -> str:
    """"interior" if the best rate (lowest validation NLL) has a swept rate on both sides, else "edge"."""
    best = min(sweep, key=sweep.get)
    return "interior" if min(sweep) < best < max(sweep) else "edge"


def _next_rate(sweep: dict[float, float], lr_scale: float) -> float | None:
    """One rung past the edge where the best rate sits; None when the ladder ends there."""
    best = min(sweep, key=sweep.get)
    i = _rung(best / lr_scale)
    j = i + 1 if best == max(sweep) else i - 1
    return LR_LADDER[j] * lr_scale if 0 <= j < len(LR_LADDER) else None


# ---------------------------------------------------------------- the no-training baselines

def baselines(config: CompareConfig, tokenizer, train, val, test, reference: RetentionReference) -> dict:
    """Zero-shot, few-shot (the first k training rows), BM25-retrieved few-shot (from the training rows) and
    zero-shot on the NF4 base, on the test questions; and the untrained models' validation NLL (where a run
    starts: `method_table` checks that every run left it)."""
    retriever = Retriever(train)
    arms = {"zero_shot": list(test),
            "few_shot": [few_shot_row(r, train[:config.few_shot_k]) for r in test],
            "retrieval_few_shot": [few_shot_row(r, retriever.top(question(r), config.few_shot_k)) for r in test],
            "zero_shot_nf4": list(test)}
    zero_tokens = statistics.fmean(prompt_tokens(tokenizer, prompt_for(tokenizer, r)) for r in test)
    out: dict = {}
    models = {"fp32": place(load_base_model(config.model, dtype=torch.float32)), "nf4": place(nf4_base(config.model))}
    for m in models.values():
        m.eval()
    for name, rows in arms.items():
        model = models["nf4" if name == "zero_shot_nf4" else "fp32"]
        tokens = statistics.fmean(prompt_tokens(tokenizer, prompt_for(tokenizer, r)) for r in rows)
        result = {"test": {**_nll_entry(row_nlls(model, tokenizer, rows)),
                           **answer_rows(model, tokenizer, rows[:config.generate_rows], config.max_new_tokens)},
                  "prompt_tokens": round(tokens, 1), "extra_prompt_tokens": round(tokens - zero_tokens, 1),
                  "examples": [[m["content"] for m in r["messages"][:-2:2]] for r in rows[:config.generate_rows]]
                  if "few_shot" in name else None}
        if name == "zero_shot_nf4":
            result["retention"] = retention_rows(model, tokenizer, reference)
        out[name] = result
        t = result["test"]
        print(f"[compare-methods] {name}: response ppl {t['response_ppl']}, ROUGE-L "
              f"{statistics.fmean(t['rouge_rows']):.3f}, format {statistics.fmean(t['format_rows']):.2f}, "
              f"{tokens:.0f} prompt tokens", flush=True)
    out["untrained_val_nll"] = {k: round(statistics.fmean(row_nlls(m, tokenizer, val)), 5) for k, m in models.items()}
    del models
    gc.collect()
    return out


# ---------------------------------------------------------------- costs: sizes, memory, timing (one process)

def _adapter_bytes(model, method: str) -> dict:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        if method == "pissa":  # its adapter needs the residual base it rewrote; as a plain LoRA it is rank 2r
            init = Path(tmp) / "init"
            model.peft_config["default"].init_lora_weights = True  # peft's recipe: save the start as plain LoRA
            model.save_pretrained(str(init))
            model.peft_config["default"].init_lora_weights = "pissa_niter_4"
            model.save_pretrained(str(Path(tmp) / "as_lora"), path_initial_model_for_weight_conversion=str(init))
            out["servable_bytes"] = dir_bytes(Path(tmp) / "as_lora")
        model.save_pretrained(str(Path(tmp) / "adapter"))
        out["adapter_bytes"] = dir_bytes(Path(tmp) / "adapter")
    return out


def memory_columns(model, method: str, input_ids: torch.Tensor, config: CompareConfig) -> dict:
    """Tensor peak of two AdamW steps (MemTracker) and `course vram`'s prediction for the same shapes, with the
    `course vram` command that prints it."""
    tracked = track_model_steps(model, input_ids, steps=2)
    out = {"tensor_peak_bytes": tracked.peak, "by_category": tracked.by_category}
    if method in VRAM_METHOD:
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        vram = VramConfig(method=VRAM_METHOD[method], precision="fp32", batch_size=int(input_ids.shape[0]),
                          seq_len=int(input_ids.shape[1]), lora_r=config.r, foreach=False,
                          prepare_model_for_kbit_training=True)
        out["vram_estimate_bytes"] = estimate_memory(shape_of(base.config), vram).peak
        out["vram_command"] = command_line("vram", VramArgs(model=f"data/models/{Path(config.model).name}"), vram)
    return out


def _latency(model, tokenizer, prompt: str, new_tokens: int) -> float:
    device = next(model.parameters()).device
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"].to(device)
    _sync()
    start = time.perf_counter()
    with torch.no_grad():
        model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                       min_new_tokens=new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    _sync()
    return time.perf_counter() - start


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _timed_steps(model, method: str, batches, steps: int) -> list[float]:
    log = train_steps(model, batches[:steps + 1], 1e-6, adalora=method == "adalora")  # the first one is untimed
    return log["seconds"][1:]


def costs(config: CompareConfig, tokenizer, batches, prompts: dict[str, str], kept: dict | None = None,
          on_progress=None) -> dict:
    """Sizes and memory of each method, then `timing_rounds` rounds timing every method (and the baselines'
    answers) in turn, in this one process; `kept` (from an interrupted run) skips what it holds."""
    out = kept or {"sizes": {}, "rounds": []}
    spec = config.spec()
    on_progress = on_progress or (lambda c: None)
    for method in config.methods:
        if method in out["sizes"]:
            continue
        model = place(build_method(method, config.model, spec), method)
        entry = {"trainable_parameters": trainable_parameters(model),
                 "peft_trainable_parameters": model.get_nb_trainable_parameters()[0]
                 if hasattr(model, "get_nb_trainable_parameters") else None, **_adapter_bytes(model, method)}
        entry.update(memory_columns(model, method, batches[0]["input_ids"].to(next(model.parameters()).device),
                                    config))
        entry["extra_positions"] = config.num_virtual_tokens if method in PROMPT_LEARNING else 0
        out["sizes"][method] = entry
        print(f"[compare-methods] costs {method}: {entry['trainable_parameters']:,} trainable, "
              f"{entry['adapter_bytes'] / 1e6:.2f} MB on disk, tensor peak {entry['tensor_peak_bytes'] / 1e6:.0f} MB",
              flush=True)
        on_progress(out)
        del model
        gc.collect()
    prompt = prompts["zero_shot"]
    while len(out["rounds"]) < config.timing_rounds:
        loads = [os.getloadavg()[0] if hasattr(os, "getloadavg") else None]
        rnd: dict = {}
        for method in config.methods:
            model = place(build_method(method, config.model, spec), method)
            entry = {"step_seconds": _timed_steps(model, method, batches, config.timing_steps)}
            model.eval()
            entry["latency_unmerged_seconds"] = _latency(prepared(model, method), tokenizer, prompt,
                                                         config.latency_tokens)
            if method not in PROMPT_LEARNING and method != "qlora" and hasattr(model, "merge_and_unload"):
                entry["latency_merged_seconds"] = _latency(model.merge_and_unload(), tokenizer, prompt,
                                                           config.latency_tokens)
            rnd[method] = entry
            del model
            gc.collect()
        if config.baselines:
            for kind in ("fp32", "nf4"):
                model = place(load_base_model(config.model, dtype=torch.float32) if kind == "fp32"
                              else nf4_base(config.model))
                model.eval()
                for name in (("zero_shot", "few_shot", "retrieval_few_shot") if kind == "fp32" else ("zero_shot_nf4",)):
                    rnd[name] = {"latency_seconds": _latency(model, tokenizer, prompts[name], config.latency_tokens)}
                del model
                gc.collect()
        loads.append(os.getloadavg()[0] if hasattr(os, "getloadavg") else None)
        rnd["load_average"] = loads
        out["rounds"].append(rnd)
        print(f"[compare-methods] timing round {len(out['rounds'])}/{config.timing_rounds}: "
              + ", ".join(f"{m} {statistics.median(rnd[m]['step_seconds']):.2f} s/step" for m in config.methods),
              flush=True)
        on_progress(out)
    return out


# ---------------------------------------------------------------- training runs

def _one_run(config, method, lr, seed, tokenizer, train, val):
    model = place(build_method(method, config.model, config.spec(), seed=seed), method)
    batches = training_batches(tokenizer, train, config.per_device_train_batch_size, config.max_steps, seed,
                               config.max_length)
    log = train_steps(model, batches, lr, adalora=method == "adalora")
    val_nll = statistics.fmean(row_nlls(prepared(model, method), tokenizer, val))
    run = {"method": method, "learning_rate": lr, "seed": seed, "val_response_nll": round(val_nll, 5),
           "train_loss": [round(x, 4) for x in log["loss"]],
           "train_tokens": int(sum(int((b["labels"] != -100).sum()) for b in batches))}
    print(f"[compare-methods] {method} lr {lr:g} seed {seed}: val response NLL {val_nll:.4f}", flush=True)
    return model, run


def _evaluate(config, method, model, tokenizer, test, reference) -> dict:
    m = prepared(model, method)
    return {"test": {**_nll_entry(row_nlls(m, tokenizer, test)),
                     **answer_rows(m, tokenizer, test[:config.generate_rows], config.max_new_tokens)},
            "retention": retention_rows(m, tokenizer, reference)}


def method_runs(config: CompareConfig, method: str, tokenizer, train, val, test, reference, finished: list[dict],
                on_run) -> list[dict]:
    """The sweep at the first seed (extended past an edge while its best rate sits there), then the chosen rate's
    runs, each scored on the test rows (every seed for a seeded method, the first seed for the others)."""
    done = {(r["learning_rate"], r["seed"]): r for r in finished if r["method"] == method}
    seed0, kept = config.seeds[0], None  # kept: (rate, model) of the best seed-0 run trained in this process
    start_rates = sweep_rates(method, config.lr_scale)
    rates = start_rates + [r["learning_rate"] for r in done.values() if r["seed"] == seed0 and r.get("extension")
                           and r["learning_rate"] not in start_rates]

    def run_rate(lr: float) -> None:
        nonlocal kept
        if (lr, seed0) in done:
            return
        model, run = _one_run(config, method, lr, seed0, tokenizer, train, val)
        run["extension"] = lr not in start_rates
        on_run(run)
        done[(lr, seed0)] = run
        if min((done[(x, seed0)] for x in rates if (x, seed0) in done), key=lambda r: r["val_response_nll"]) is run:
            kept = (lr, model)  # the best so far: its test scores come from this very model
        del model
        gc.collect()

    for lr in list(rates):
        run_rate(lr)
    while len(rates) - len(start_rates) < config.max_extend:  # rungs added, here or before an interruption
        sweep = {lr: done[(lr, seed0)]["val_response_nll"] for lr in rates}
        nxt = _next_rate(sweep, config.lr_scale)
        if sweep_status(sweep) == "interior" or nxt is None or nxt in rates:
            break
        rates.append(nxt)
        run_rate(nxt)
    sweep = {lr: done[(lr, seed0)]["val_response_nll"] for lr in rates}
    chosen = min(sweep, key=sweep.get)
    print(f"[compare-methods] {method}: chosen rate {chosen:g}, {sweep_status(sweep)} of its sweep "
          f"({', '.join(f'{x:g}' for x in sorted(rates))})", flush=True)
    for seed in (config.seeds if config.seeded(method) else config.seeds[:1]):
        run = done.get((chosen, seed))
        if run is not None and "test" in run:
            continue
        if seed == seed0 and kept is not None and kept[0] == chosen:
            model = kept[1]  # the sweep's own run: no need to train it again
        else:
            model, fresh = _one_run(config, method, chosen, seed, tokenizer, train, val)
            run = {**fresh, "extension": (run or {}).get("extension", False)}
        run = {**run, "chosen": True, **_evaluate(config, method, model, tokenizer, test, reference)}
        print(f"[compare-methods] {method} seed {seed}: test response ppl {run['test']['response_ppl']}, ROUGE-L "
              f"{statistics.fmean(run['test']['rouge_rows']):.3f}, format "
              f"{statistics.fmean(run['test']['format_rows']):.2f}", flush=True)
        on_run(run)
        done[(chosen, seed)] = run
        del model
        kept = None
        gc.collect()
    return list(done.values())


def compare_methods(config: CompareConfig, state: dict | None = None, save=None) -> dict:
    """The baselines, every method's runs, then the costs: the results file's payload (without its command).

    `state` holds what an interrupted run finished ("runs", "baselines", "costs", "reference"); `save()` is
    called after each piece, so that a later `--resume` keeps it."""
    config.validate()
    state = state if state is not None else {}
    state.setdefault("runs", [])
    save = save or (lambda: None)
    name = model_name(config.model)
    tok = load_tokenizer(name)
    train, val, test = (task_rows("train", config.train_rows), task_rows("validation", config.eval_rows),
                        task_rows("test", config.test_rows))
    if not state.get("reference"):
        set_seed(0)
        base_model = place(load_base_model(name, dtype=torch.float32))
        state["reference"] = _reference_dict(retention_reference(base_model, tok,
                                                                 GENERAL_PROMPTS[:config.retention_prompts]))
        del base_model
        save()
    reference = RetentionReference(**state["reference"])
    if config.baselines and not state.get("baselines"):
        state["baselines"] = baselines(config, tok, train, val, test, reference)
        save()

    def on_run(run: dict) -> None:
        state["runs"] = [r for r in state["runs"] if (r["method"], r["learning_rate"], r["seed"]) !=
                         (run["method"], run["learning_rate"], run["seed"])] + [run]
        save()
    for method in config.methods:
        method_runs(config, method, tok, train, val, test, reference, state["runs"], on_run)
    if config.costs and (not state.get("costs") or len(state["costs"]["rounds"]) < config.timing_rounds
                         or set(config.methods) - set(state["costs"]["sizes"])):
        batches = training_batches(tok, train, config.per_device_train_batch_size, config.timing_steps + 1, 0,
                                   config.max_length)
        retriever = Retriever(train)
        prompts = {"zero_shot": prompt_for(tok, test[0]), "zero_shot_nf4": prompt_for(tok, test[0]),
                   "few_shot": prompt_for(tok, few_shot_row(test[0], train[:config.few_shot_k])),
                   "retrieval_few_shot": prompt_for(tok, few_shot_row(test[0], retriever.top(question(test[0]),
                                                                                            config.few_shot_k)))}

        def progress(c):
            state["costs"] = c
            save()
        state["costs"] = costs(config, tok, batches, prompts, state.get("costs"), progress)
        save()
    return {"model": name, "config": {k: v for k, v in asdict(config).items() if k not in ("resume", "out", "merge")},
            "device": str(get_device()), "baselines": state.get("baselines", {}), "costs": state.get("costs"),
            "runs": state["runs"], "retention_questions": reference.questions,
            "test_references": [r["messages"][-1]["content"] for r in test]}


# ---------------------------------------------------------------- reading a results file

def _interval(rows: list[list[float]]) -> dict:
    """Mean of seeds × items with its 95 % interval (`seeds_by_items`); one seed: the items' t interval alone."""
    if len(rows) >= 2:
        s = seeds_by_items(rows)
        return {"mean": s["mean"], "low": s["ci95"][0], "high": s["ci95"][1], "seeds": len(rows), "items_only": False}
    from scipy.stats import t as student_t
    items = rows[0]
    mean = statistics.fmean(items)
    se = statistics.stdev(items) / math.sqrt(len(items)) if len(items) > 1 else float("nan")
    q = float(student_t.ppf(0.975, len(items) - 1)) if len(items) > 1 else float("nan")
    return {"mean": mean, "low": mean - q * se, "high": mean + q * se, "seeds": 1, "items_only": True}


def versus(a: list[list[float]], b: list[list[float]], a_fixed: bool = False, b_fixed: bool = False) -> dict:
    """mean(b) − mean(a) on the same items, two arms of seeds × items (`seeds_by_items_difference`, Student's t).

    A fixed arm (a no-training baseline: one row, no seed-to-seed noise) counts as that row at every seed. An arm
    run at one seed only has no estimate of its seed noise: the interval is then the items' alone (a paired t on
    the per-item differences of the seed means), too narrow by that unknown part, and marked `items_only`.
    "verdict": "lower" or "higher" when the 95 % interval excludes 0, else "not separated". "tie": not separated *and*
    the whole interval inside ±`TIE_MARGIN`; a wide interval that is not separated only failed to show a difference
    (it is not a tie: "unresolved")."""
    if a_fixed and len(b) > 1:
        a = a * len(b)
    if b_fixed and len(a) > 1:
        b = b * len(a)
    if len(a) >= 2 and len(b) >= 2:
        d = seeds_by_items_difference(a, b)
        out = {"diff": d["diff"], "low": d["low"], "high": d["high"], "items_only": False}
    else:
        ma = [statistics.fmean(col) for col in zip(*a)]
        mb = [statistics.fmean(col) for col in zip(*b)]
        iv = _interval([[y - x for x, y in zip(ma, mb)]])
        out = {"diff": iv["mean"], "low": iv["low"], "high": iv["high"], "items_only": not (a_fixed and b_fixed)}
    out["verdict"] = "lower" if out["high"] < 0 else "higher" if out["low"] > 0 else "not separated"
    out["tie"] = out["verdict"] == "not separated" and -TIE_MARGIN < out["low"] and out["high"] < TIE_MARGIN
    return out


def _median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _from_start(val_nll: float, start: float) -> str:
    """Where a run ended against the untrained model's validation NLL: "left" (≥ TIE_MARGIN below), "worse" (above
    it: the run made the model worse than no training) or "stayed" (within TIE_MARGIN below)."""
    return "left" if val_nll <= start - TIE_MARGIN else "worse" if val_nll > start else "stayed"


def method_table(result: dict, reference: str = REFERENCE) -> dict[str, dict]:
    """One row per method and baseline of a compare_methods results file: every column the lesson shows.

    Test response NLL (mean over seeds × test rows, 95 % interval, its perplexity exp(NLL)), and the same
    against `reference` item by item (`versus`); ROUGE-L, format rate and the change of log-probability of the
    general questions' old answers, each with its interval over seeds × items; the sweep and whether the chosen
    rate is interior; where each seed's run ended against its start (`_from_start`: left it, stayed, or ended worse
    than the untrained model); the costs
    (medians over the timing rounds).
    """
    rows: dict[str, dict] = {}
    runs = result["runs"]
    base = result.get("baselines", {})
    untrained = base.get("untrained_val_nll", {})
    costs_ = result.get("costs") or {"sizes": {}, "rounds": []}
    by_arm: dict[str, list[dict]] = {}
    for method in dict.fromkeys(r["method"] for r in runs):
        chosen = sorted((r for r in runs if r["method"] == method and r.get("chosen")), key=lambda r: r["seed"])
        if chosen:
            by_arm[method] = chosen
    for name in BASELINES:
        if name in base:
            by_arm[name] = [base[name]]

    def rows_of(arm, key, part="test"):
        return [list(map(float, r[part][key])) for r in by_arm[arm]]

    ref_nll = rows_of(reference, "nll_rows") if reference in by_arm else None
    for arm, chosen in by_arm.items():
        is_method = arm not in BASELINES
        nll = _interval(rows_of(arm, "nll_rows"))
        row = {"kind": "method" if is_method else "baseline", "seeds": len(chosen) if is_method else None,
               "nll": nll, "ppl": math.exp(nll["mean"]), "ppl_low": math.exp(nll["low"]),
               "ppl_high": math.exp(nll["high"]),
               "ppl_by_seed": [r["test"]["response_ppl"] for r in chosen] if is_method else None,
               "rouge_l": _interval(rows_of(arm, "rouge_rows")), "format_rate": _interval(rows_of(arm, "format_rows")),
               "vs_reference": versus(ref_nll, rows_of(arm, "nll_rows"), b_fixed=not is_method)
               if ref_nll and arm != reference else None,
               "answers": chosen[0]["test"]["answers"]}
        if is_method or "retention" in chosen[0]:
            row["logprob_change"] = _interval(rows_of(arm, "logprob_change_rows", "retention"))
            row["kept"] = statistics.fmean(x for r in chosen for x in r["retention"]["kept_rows"])
        if is_method:
            first = chosen[0]
            sweep = {r["learning_rate"]: r["val_response_nll"] for r in runs
                     if r["method"] == arm and r["seed"] == first["seed"]}
            start = untrained.get("nf4" if arm == "qlora" else "fp32")
            row.update({"learning_rate": first["learning_rate"], "sweep": dict(sorted(sweep.items())),
                        "sweep_status": sweep_status(sweep), "untrained_val_nll": start,
                        "val_nll_by_seed": [r["val_response_nll"] for r in chosen],
                        # per seed: "left" its start (validation NLL ≥ TIE_MARGIN below the untrained model's),
                        # "stayed" within it, or ended "worse" than the untrained model (a run that diverged)
                        "start_by_seed": None if start is None else [_from_start(r["val_response_nll"], start)
                                                                     for r in chosen],
                        "left_start": None if start is None else all(_from_start(r["val_response_nll"], start) == "left"
                                                                     for r in chosen),
                        "first_loss": first["train_loss"][0], "last_losses": statistics.fmean(first["train_loss"][-4:]),
                        "first_loss_by_seed": [r["train_loss"][0] for r in chosen],
                        "train_tokens": first["train_tokens"]})
            size = costs_["sizes"].get(arm, {})
            row.update({k: size.get(k) for k in ("trainable_parameters", "adapter_bytes", "servable_bytes",
                                                 "tensor_peak_bytes", "vram_estimate_bytes", "vram_command",
                                                 "extra_positions")})
            timing = [rnd[arm] for rnd in costs_["rounds"] if arm in rnd]
            row["seconds_per_step"] = _median([statistics.median(t["step_seconds"]) for t in timing])
            row["latency_unmerged_seconds"] = _median([t["latency_unmerged_seconds"] for t in timing])
            row["latency_merged_seconds"] = _median([t.get("latency_merged_seconds") for t in timing])
        else:
            b = chosen[0]
            timing = [rnd[arm] for rnd in costs_["rounds"] if arm in rnd]
            row.update({"trainable_parameters": 0, "prompt_tokens": b["prompt_tokens"],
                        "extra_prompt_tokens": b["extra_prompt_tokens"],
                        "latency_seconds": _median([t["latency_seconds"] for t in timing])})
        rows[arm] = row
    return rows


# ---------------------------------------------------------------- the command

def _process(config: CompareConfig, seconds: float, cpu_seconds: float, started: str, commit: dict) -> dict:
    return {"command": command_line("compare-methods", config), **commit, "threads": torch.get_num_threads(),
            "device": str(get_device()), "started": started, "wall_seconds": round(seconds, 1),
            "cpu_seconds": round(cpu_seconds, 1)}


def merge_results(paths: list[str]) -> dict:
    """Put the results files of several parts of one comparison together (same model and options but `--methods`,
    `--baselines`, `--costs`): every run, the baselines and the costs of the part that measured them, and every
    part's processes (command, commit, seconds)."""
    parts = [json.loads(Path(p).read_text(encoding="utf-8")) for p in paths]
    if len({p["model"] for p in parts}) != 1:
        raise ValueError("the parts were run on different models.")
    keys = [k for k in parts[0]["config"] if k not in ("methods", "baselines", "costs")]
    for p in parts[1:]:
        differ = [k for k in keys if p["config"].get(k) != parts[0]["config"].get(k)]
        if differ:
            raise ValueError(f"the parts differ in {', '.join(differ)}: only --methods, --baselines and --costs "
                             "may differ between the parts of one comparison.")
    with_costs = [p for p in parts if p.get("costs")]
    if len(with_costs) > 1:
        raise ValueError("more than one part measured the costs: they must come from one process (interleaved).")
    runs, methods = [], []
    for p in parts:
        clash = {r["method"] for r in p["runs"]} & {r["method"] for r in runs}
        if clash:
            raise ValueError(f"two parts ran {', '.join(sorted(clash))}.")
        runs += p["runs"]
        methods += p["config"]["methods"]
    base = next((p["baselines"] for p in parts if p.get("baselines")), {})
    config = {**parts[0]["config"], "methods": methods, "baselines": bool(base), "costs": bool(with_costs)}
    return {"model": parts[0]["model"], "config": config, "device": parts[0].get("device"), "baselines": base,
            "costs": with_costs[0]["costs"] if with_costs else None, "runs": runs,
            "retention_questions": parts[0]["retention_questions"], "test_references": parts[0]["test_references"],
            "processes": [{**proc, "part": str(path)} for p, path in zip(parts, paths) for proc in p["processes"]],
            "parts": [p["command"] for p in parts]}


def _may_resume(kept: dict, options: dict) -> bool:
    """Whether runs kept with options `kept` belong to a run with `options`: the same options, except that more
    methods may be seeded (a method's sweep and first seed do not depend on it; its other seeds are added)."""
    def seeded(o: dict) -> set[str]:
        return set(o["methods"]) if "all" in o["seeded_methods"] else set(o["seeded_methods"])
    rest = ({k: v for k, v in o.items() if k != "seeded_methods"} for o in (kept, options))
    return next(rest) == next(rest) and seeded(kept) <= seeded(options)


def _run(config: CompareConfig) -> int:
    if config.merge:
        result = merge_results(config.merge)
        command = command_line("compare-methods", config)
        result["processes"].append({"command": command, **git_commit(), "wall_seconds": 0.0, "cpu_seconds": 0.0,
                                    "merged": True})
        name = results_name("compare_methods", result["model"]) if result["model"] != "smollm2-135m-instruct" \
            else "compare_methods"
        path = save_results(name, {"command": command, **result}, out=config.out or None)
        print(f"wrote {path} from {len(config.merge)} parts")
        return 0
    config.validate()
    folder = checkpoints_dir(config.out)
    options = {k: v for k, v in asdict(config).items() if k not in ("resume", "merge")}
    saved = folder / "runs.json"
    kept = json.loads(saved.read_text(encoding="utf-8")) if config.resume and saved.exists() else None
    if kept is not None and not _may_resume(kept["options"], options):
        raise ValueError(f"the runs kept in {folder} are from `course compare-methods` with other options: give "
                         "those options with --resume (--seeded_methods may name more methods), or leave out "
                         "--resume to start again.")
    state = kept or {"options": options, "runs": [], "baselines": None, "processes": []}
    state["options"] = options  # the same, or more methods seeded: what a later --resume must give
    state.setdefault("processes", [])
    if not config.resume:
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    start, cpu_start = time.perf_counter(), time.process_time()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    commit = git_commit()  # the code this process runs: read once, at its start
    earlier = list(state["processes"])

    def write() -> None:  # this process's record is rewritten each time: an interruption keeps its seconds
        state["processes"] = earlier + [_process(config, time.perf_counter() - start, time.process_time() - cpu_start,
                                                 started, commit)]
        tmp = saved.with_suffix(".tmp")
        tmp.write_text(json.dumps(state), encoding="utf-8")
        os.replace(tmp, saved)
    write()
    quiet_command()

    def stop(signum, frame):  # `kill PID` (SIGTERM) stops it as Ctrl-C does: what finished is kept, seconds included
        raise KeyboardInterrupt
    previous = signal.signal(signal.SIGTERM, stop) if threading.current_thread() is threading.main_thread() else None
    try:
        result = compare_methods(config, state, write)
    except KeyboardInterrupt:
        write()
        raise KeyboardInterrupt(f"{len(state['runs'])} runs are kept in {folder}; `course compare-methods --resume` "
                                "(same options) runs the rest") from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    write()
    result["processes"] = state["processes"]
    result["wall_seconds"] = round(sum(p["wall_seconds"] for p in state["processes"]), 1)
    result["cpu_seconds"] = round(sum(p["cpu_seconds"] for p in state["processes"]), 1)
    path = save_results(results_name("compare_methods", result["model"]) if config.model != "smollm2-135m-instruct"
                        else "compare_methods", {"command": command_line("compare-methods", config), **result},
                        out=config.out or None)
    shutil.rmtree(folder, ignore_errors=True)
    print(f"wrote {path}")
    return 0


COMMANDS = {"compare-methods": ("lesson 11: full fine-tuning, LoRA, rsLoRA, DoRA, PiSSA, QLoRA, AdaLoRA, GLoRA, IA3, "
                                "prompt and prefix tuning (each at its own learning rate) beside zero-shot, few-shot, "
                                "BM25 few-shot and the NF4 base on lesson 06's task -> "
                                "data/results/compare_methods.json; --resume keeps the runs an interrupted one "
                                "finished; --merge puts parts together", (CompareConfig,), _run)}
