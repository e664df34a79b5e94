"""`course compare-methods` (lesson 11): ten fine-tuning methods and three prompting baselines, side by side.

Every method (course_lib.tuning.methods) trains the same rows of lesson 06's task, in the same batches,
for the same number of steps; each gets its own learning rate from a short sweep at seed 0 (lesson 02),
chosen on the validation rows' response NLL, and then runs two more seeds at that rate (the sweep's
seed-0 run is the first of the three). Each run is scored on the test rows with lesson 06's metrics.
Once per method (at the chosen rate, seed 0): lesson 05's retention probe (forgetting), the adapter's
bytes on disk, the tensor peak of a training step (lesson 04's MemTracker) beside `course vram`'s
prediction where the estimator covers the method, and the latency of one answer with the adapter
unmerged and merged. The no-training baselines answer the same test questions zero-shot, few-shot
and with retrieved examples (course_lib.tuning.prompting).

The runs finished so far are kept in data/checkpoints/compare_methods/runs.json after each run;
`course compare-methods --resume` (same options) continues from there.
"""

from __future__ import annotations

import gc
import json
import math
import shutil
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from course_lib.data.datasets import data_dir
from course_lib.evaluation.uncertainty import mean_stderr
from course_lib.forgetting.generation import GENERAL_PROMPTS, retention, retention_reference
from course_lib.memory.memtrack import track_model_steps
from course_lib.memory.quant import keep_cpu_4bit_trainable
from course_lib.memory.vram import VramConfig, estimate_memory, shape_of
from course_lib.models.base import get_device, model_name, set_seed
from course_lib.models.loading import load_base_model, load_tokenizer
from course_lib.results import command_line, results_name, save_results
from course_lib.tuning.methods import (METHOD_NAMES, CachelessGreedy, MethodSpec, TrimVirtualTokens, build_method,
                                       trainable_parameters, training_batches, train_steps)
from course_lib.tuning.prompting import Retriever, few_shot_row, prompt_tokens, question
from course_lib.tuning.sft import answer_metrics, dir_bytes, prompt_for, quiet_command, response_nll, task_rows

__all__ = ["LR_GRID", "CompareConfig", "VRAM_METHOD", "prepared", "score", "latency", "memory_columns",
           "baselines", "method_runs", "compare_methods", "summary", "method_table", "checkpoints_dir", "COMMANDS"]

# Two learning rates per method around its usual range (papers' and peft's examples); the sweep picks one.
LR_GRID = {"full": [2e-5, 1e-4], "lora": [5e-4, 2e-3], "rslora": [2e-4, 1e-3], "dora": [5e-4, 2e-3],
           "pissa": [1e-4, 5e-4], "qlora": [5e-4, 2e-3], "adalora": [5e-4, 2e-3], "ia3": [3e-3, 3e-2],
           "prompt_tuning": [1e-2, 3e-2], "prefix_tuning": [3e-2, 1e-1]}
VRAM_METHOD = {"full": "full", "lora": "lora", "rslora": "lora", "pissa": "lora", "qlora": "qlora"}  # the rest:
# DoRA's magnitude pass, AdaLoRA's SVD form, IA3 and virtual tokens are outside `course vram`'s estimator


@dataclass
class CompareConfig:
    """What `course compare-methods` runs."""

    model: str = field(default="smollm2-135m-instruct", metadata={"help": "a chat model (lesson 06's task)"})
    methods: list[str] = field(default_factory=lambda: list(METHOD_NAMES), metadata={"help": "which methods"})
    train_rows: int = field(default=6, metadata={"help": "training rows (every method sees each once per epoch)"})
    eval_rows: int = field(default=6, metadata={"help": "validation rows: the learning rate is chosen on them"})
    test_rows: int = field(default=8, metadata={"help": "test rows: the response NLL of every run"})
    generate_rows: int = field(default=6, metadata={"help": "the first of the test rows answered greedily "
                                                            "(ROUGE-L, format rate)"})
    max_steps: int = field(default=3, metadata={"help": "optimizer steps per run (the same for every method)"})
    per_device_train_batch_size: int = field(default=2, metadata={"help": "rows per step"})
    max_length: int = field(default=128, metadata={"help": "tokens per training row at most"})
    r: int = field(default=8, metadata={"help": "rank of the LoRA family (AdaLoRA: its final average rank)"})
    num_virtual_tokens: int = field(default=8, metadata={"help": "prompt and prefix tuning's virtual tokens"})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "the first one runs the sweep"})
    lr_scale: float = field(default=1.0, metadata={"help": "multiplies every learning rate of LR_GRID"})
    max_new_tokens: int = field(default=20, metadata={"help": "greedy tokens per test answer"})
    generate_seeds: int = field(default=1, metadata={"help": "seeds whose test answers are generated (ROUGE-L, "
                                                             "format); every seed gets the response NLL"})
    retention_prompts: int = field(default=4, metadata={"help": "lesson 05's general questions for forgetting"})
    few_shot_k: int = field(default=2, metadata={"help": "examples in a few-shot prompt"})
    baselines: bool = field(default=True, metadata={"help": "also answer zero-shot, few-shot and retrieval few-shot"})
    out: str = field(default="", metadata={"help": "results file; '' = data/results/compare_methods.json"})
    resume: bool = field(default=False, metadata={"help": "keep the runs an interrupted run finished "
                                                          "(data/checkpoints/compare_methods); same options"})

    def spec(self) -> MethodSpec:
        return MethodSpec(r=self.r, lora_alpha=2.0 * self.r, num_virtual_tokens=self.num_virtual_tokens,
                          total_steps=self.max_steps)

    def validate(self) -> None:
        unknown = [m for m in self.methods if m not in METHOD_NAMES]
        if unknown:
            raise ValueError(f"unknown method {unknown[0]!r}: choose from {', '.join(METHOD_NAMES)}.")
        if min(self.max_steps, self.train_rows, self.eval_rows, self.test_rows, len(self.seeds)) <= 0:
            raise ValueError("--max_steps, --train_rows, --eval_rows, --test_rows and --seeds must be positive.")


def checkpoints_dir(out: str = "") -> Path:
    """Where the finished runs wait until the command ends (git-ignored): what --resume keeps; one folder
    per results file, so two runs writing different files (a split of the methods) do not meet."""
    return data_dir() / "checkpoints" / ("compare_methods" + (f"-{Path(out).stem}" if out else ""))


def prepared(model, method: str):
    """The model as lesson 06's metrics call it: prompt tuning's virtual-token logits cut off; prefix
    tuning decoded without a cache (its `generate` ignores the prefix: `methods.CachelessGreedy`)."""
    if method == "prompt_tuning":
        return TrimVirtualTokens(model)
    return CachelessGreedy(model) if method == "prefix_tuning" else model


def score(model, tokenizer, rows, max_new_tokens: int) -> dict:
    """Lesson 06's metrics on `rows`, rounded (the answers kept)."""
    m = answer_metrics(model, tokenizer, rows, "chat", max_new_tokens)
    out = {k: round(v, 4) for k, v in m.items() if k != "answers"}
    return {**out, "response_ppl": round(math.exp(m["response_nll"]), 3), "answers": m["answers"]}


def latency(model, tokenizer, prompt: str, new_tokens: int = 8, repeats: int = 1) -> float:
    """Median seconds to generate `new_tokens` greedy tokens after `prompt` (no early stop)."""
    device = next(model.parameters()).device
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"].to(device)
    times = []
    with torch.no_grad():
        for _ in range(repeats):
            start = time.perf_counter()
            model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                           min_new_tokens=new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
            times.append(time.perf_counter() - start)
    return round(statistics.median(times), 4)


def memory_columns(model, method: str, input_ids: torch.Tensor, r: int) -> dict:
    """Tensor peak of two AdamW steps (MemTracker) and `course vram`'s prediction for the same shapes."""
    tracked = track_model_steps(model, input_ids, steps=2)
    out = {"tensor_peak_bytes": tracked.peak, "by_category": tracked.by_category}
    if method in VRAM_METHOD:
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        est = estimate_memory(shape_of(base.config), VramConfig(
            method=VRAM_METHOD[method], precision="fp32", batch_size=int(input_ids.shape[0]),
            seq_len=int(input_ids.shape[1]), lora_r=r, foreach=False, prepare_model_for_kbit_training=True))
        out["vram_estimate_bytes"] = est.peak
    return out


def baselines(config: CompareConfig, tokenizer, train, test) -> dict:
    """Zero-shot, few-shot (the first k training rows) and BM25-retrieved few-shot on the test questions."""
    model = load_base_model(config.model, dtype=torch.float32).to(get_device())
    model.eval()
    retriever = Retriever(train)
    arms = {"zero_shot": list(test),
            "few_shot": [few_shot_row(r, train[:config.few_shot_k]) for r in test],
            "retrieval_few_shot": [few_shot_row(r, retriever.top(question(r), config.few_shot_k)) for r in test]}
    zero_tokens = statistics.fmean(prompt_tokens(tokenizer, prompt_for(tokenizer, r)) for r in test)
    out = {}
    for name, rows in arms.items():
        start = time.perf_counter()
        result = score(model, tokenizer, rows[:config.generate_rows], config.max_new_tokens)
        seconds = (time.perf_counter() - start) / config.generate_rows
        result.update(_nll(model, tokenizer, rows))  # on every test row, as the methods' runs
        tokens = statistics.fmean(prompt_tokens(tokenizer, prompt_for(tokenizer, r)) for r in rows)
        out[name] = {"test": result, "prompt_tokens": round(tokens, 1), "extra_prompt_tokens": round(tokens - zero_tokens, 1),
                     "seconds_per_query": round(seconds, 3)}
        print(f"[compare-methods] {name}: ROUGE-L {result['rouge_l']}, format {result['format_rate']}, "
              f"response ppl {result['response_ppl']}, {tokens:.0f} prompt tokens", flush=True)
    return out


def _nll(model, tokenizer, rows) -> dict:
    nll = response_nll(model, tokenizer, rows)
    return {"response_nll": round(nll, 4), "response_ppl": round(math.exp(nll), 3)}


def _one_run(config, method, lr, seed, tokenizer, train, val):
    model = build_method(method, config.model, config.spec(), seed=seed)
    if method == "qlora":
        keep_cpu_4bit_trainable(model)  # lesson 04: else an evaluation first breaks training on some CPUs
    else:
        model = model.to(get_device())  # a 4-bit model is placed when it is loaded
    batches = training_batches(tokenizer, train, config.per_device_train_batch_size, config.max_steps, seed,
                               config.max_length)
    log = train_steps(model, batches, lr, adalora=method == "adalora")
    val_nll = response_nll(prepared(model, method), tokenizer, val)
    run = {"method": method, "learning_rate": lr, "seed": seed, "val_response_nll": round(val_nll, 4),
           "train_loss": [round(x, 4) for x in log["loss"]],
           "seconds_per_step": round(statistics.fmean(log["seconds"][1:] or log["seconds"]), 2),
           "train_tokens": int(sum(int((b["labels"] != -100).sum()) for b in batches))}
    print(f"[compare-methods] {method} lr {lr:g} seed {seed}: val response NLL {val_nll:.4f}, "
          f"{run['seconds_per_step']} s/step", flush=True)
    return model, run, batches


def method_runs(config: CompareConfig, method: str, tokenizer, train, val, test, reference, finished: list[dict],
                on_run) -> list[dict]:
    """The sweep at seed 0, the chosen rate's other seeds, and the once-per-method columns (seed 0)."""
    done = {(r["learning_rate"], r["seed"]): r for r in finished if r["method"] == method}
    rates = [lr * config.lr_scale for lr in LR_GRID[method]]
    seed0, kept = config.seeds[0], None
    for lr in rates:  # the sweep: validation NLL only; the best model is kept for its test scores
        if (lr, seed0) in done:
            continue
        model, run, batches = _one_run(config, method, lr, seed0, tokenizer, train, val)
        on_run(run)
        done[(lr, seed0)] = run
        best = min((done[(x, seed0)] for x in rates if (x, seed0) in done), key=lambda r: r["val_response_nll"])
        if best is run:
            kept = (model, batches)
        else:
            del model
        gc.collect()
    chosen = min((done[(x, seed0)] for x in rates), key=lambda r: r["val_response_nll"])["learning_rate"]
    for seed in config.seeds:
        run = done[(chosen, seed)] if (chosen, seed) in done else None
        if run is not None and "test" in run:
            continue
        if run is None or kept is None or seed != seed0:
            model, run, batches = _one_run(config, method, chosen, seed, tokenizer, train, val)
        else:
            model, batches = kept
        generate = config.seeds.index(seed) < config.generate_seeds
        test_scores = score(prepared(model, method), tokenizer, test[:config.generate_rows],
                            config.max_new_tokens) if generate else {}
        test_scores.update(_nll(prepared(model, method), tokenizer, test))
        run = {**run, "chosen": True, "test": test_scores}
        if seed == seed0:
            run.update(_once_per_method(config, method, model, tokenizer, test, reference, batches))
        print(f"[compare-methods] {method} seed {seed}: test {run['test']['response_ppl']} ppl, ROUGE-L "
              f"{run['test'].get('rouge_l')}, format {run['test'].get('format_rate')}", flush=True)
        on_run(run)
        done[(chosen, seed)] = run
        del model
        kept = None
        gc.collect()
    return [r for r in done.values()]


def _once_per_method(config, method, model, tokenizer, test, reference, batches) -> dict:
    out = {"trainable_parameters": trainable_parameters(model),
           "peft_trainable_parameters": model.get_nb_trainable_parameters()[0]
           if hasattr(model, "get_nb_trainable_parameters") else None,
           "retention": {k: v for k, v in retention(prepared(model, method), tokenizer, reference).items()
                         if k != "answers"}}
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        out["adapter_bytes"] = dir_bytes(tmp)
    # two more AdamW steps at a tiny rate under MemTracker (the scores above are already taken)
    out.update(memory_columns(model, method, batches[0]["input_ids"].to(next(model.parameters()).device), config.r))
    prompt = prompt_for(tokenizer, test[0])
    out["latency_unmerged_seconds"] = latency(prepared(model, method), tokenizer, prompt)
    out["latency_merged_seconds"] = None  # prompt and prefix tuning have nothing to merge; QLoRA's base is 4-bit
    if hasattr(model, "merge_and_unload") and method not in ("prompt_tuning", "prefix_tuning", "qlora"):
        out["latency_merged_seconds"] = latency(model.merge_and_unload(), tokenizer, prompt)
    out["extra_prompt_tokens"] = config.num_virtual_tokens if method in ("prompt_tuning", "prefix_tuning") else 0
    return out


def summary(runs: list[dict], key: str = "response_ppl") -> dict:
    """method -> mean, 95 % half-width (1.96 × standard error over seeds) and n of a test metric."""
    out = {}
    for method in dict.fromkeys(r["method"] for r in runs):
        values = [r["test"][key] for r in runs if r["method"] == method and r.get("chosen")]
        if values:
            out[method] = {"mean": statistics.fmean(values),
                           "ci95": 1.96 * mean_stderr(values) if len(values) > 1 else float("nan"), "n": len(values)}
    return out


def method_table(result: dict) -> dict[str, dict]:
    """One row per method and baseline of a compare_methods results file: every column the lesson shows.

    Methods: the chosen learning rate and the sweep's validation NLL per rate; test response perplexity
    over the seeds at the chosen rate (mean, 95 % half-width, n); ROUGE-L, format rate, retention,
    sizes, memory and latency of the seed-0 run; seconds per step averaged over the seeds.
    Baselines: their test scores and prompt cost (no training: 0 trainable parameters, nothing forgotten).
    """
    rows: dict[str, dict] = {}
    ppl = summary(result["runs"])
    for method in dict.fromkeys(r["method"] for r in result["runs"]):
        runs = [r for r in result["runs"] if r["method"] == method]
        chosen = sorted((r for r in runs if r.get("chosen")), key=lambda r: r["seed"])
        if not chosen or "test" not in chosen[0]:
            continue
        first = chosen[0]
        sweep = {r["learning_rate"]: r["val_response_nll"] for r in runs if r["seed"] == first["seed"]}
        rows[method] = {"kind": "method", "learning_rate": first["learning_rate"], "sweep": dict(sorted(sweep.items())),
                        "ppl": ppl[method]["mean"], "ppl_ci95": ppl[method]["ci95"], "seeds": ppl[method]["n"],
                        "ppl_by_seed": [r["test"]["response_ppl"] for r in chosen],
                        "rouge_l": first["test"].get("rouge_l"), "format_rate": first["test"].get("format_rate"),
                        "kept": first["retention"]["kept"], "logprob_change": first["retention"]["logprob_change"],
                        "trainable_parameters": first["trainable_parameters"], "adapter_bytes": first["adapter_bytes"],
                        "tensor_peak_bytes": first["tensor_peak_bytes"],
                        "vram_estimate_bytes": first.get("vram_estimate_bytes"),
                        "seconds_per_step": statistics.fmean(r["seconds_per_step"] for r in chosen),
                        "latency_unmerged_seconds": first["latency_unmerged_seconds"],
                        "latency_merged_seconds": first.get("latency_merged_seconds"),
                        "extra_prompt_tokens": first["extra_prompt_tokens"]}
    for name, b in result.get("baselines", {}).items():
        rows[name] = {"kind": "baseline", "ppl": b["test"]["response_ppl"], "rouge_l": b["test"]["rouge_l"],
                      "format_rate": b["test"]["format_rate"], "trainable_parameters": 0,
                      "prompt_tokens": b["prompt_tokens"], "extra_prompt_tokens": b["extra_prompt_tokens"],
                      "seconds_per_query": b["seconds_per_query"]}
    return rows


def compare_methods(config: CompareConfig, finished: list[dict] | None = None, on_run=None,
                    done_baselines: dict | None = None, on_baselines=None) -> dict:
    """Baselines, then every method: the results file's payload (without its command)."""
    config.validate()
    start = time.perf_counter()
    name = model_name(config.model)
    tok = load_tokenizer(name)
    train, val, test = (task_rows("train", config.train_rows), task_rows("validation", config.eval_rows),
                        task_rows("test", config.test_rows))
    runs = list(finished or [])
    on_run = on_run or (lambda run: None)
    base = done_baselines or (baselines(config, tok, train, test) if config.baselines else {})
    if on_baselines and not done_baselines and base:
        on_baselines(base)
    set_seed(0)
    base_model = load_base_model(name, dtype=torch.float32).to(get_device())
    reference = retention_reference(base_model, tok, GENERAL_PROMPTS[:config.retention_prompts])
    del base_model
    for method in config.methods:
        method_done = method_runs(config, method, tok, train, val, test, reference, runs, on_run)
        runs = [r for r in runs if r["method"] != method] + method_done
    return {"model": name, "config": {k: v for k, v in asdict(config).items() if k not in ("resume", "out")},
            "lr_grid": {m: [lr * config.lr_scale for lr in LR_GRID[m]] for m in config.methods},
            "baselines": base, "runs": runs, "test_references": [r["messages"][-1]["content"] for r in test],
            "wall_seconds": round(time.perf_counter() - start, 1)}


def _run(config: CompareConfig) -> int:
    config.validate()
    folder = checkpoints_dir(config.out)
    options = {k: v for k, v in asdict(config).items() if k != "resume"}
    saved = folder / "runs.json"
    kept = json.loads(saved.read_text(encoding="utf-8")) if config.resume and saved.exists() else None
    if kept is not None and kept["options"] != options:
        raise ValueError(f"the runs kept in {folder} are from `course compare-methods` with other options: give "
                         "those options with --resume, or leave out --resume to start again.")
    state = kept or {"options": options, "runs": [], "baselines": None}
    state["seconds"] = state.get("seconds_so_far", 0.0)  # time spent before an interruption counts
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    start = time.perf_counter()

    def write() -> None:
        state["seconds_so_far"] = round(state.get("seconds", 0.0) + time.perf_counter() - start, 1)
        saved.write_text(json.dumps(state), encoding="utf-8")

    def keep(run: dict) -> None:
        state["runs"] = [r for r in state["runs"] if (r["method"], r["learning_rate"], r["seed"]) !=
                         (run["method"], run["learning_rate"], run["seed"])] + [run]
        write()

    def keep_baselines(base: dict) -> None:
        state["baselines"] = base
        write()
    write()
    quiet_command()
    try:
        result = compare_methods(config, finished=state["runs"], on_run=keep, done_baselines=state["baselines"],
                                 on_baselines=keep_baselines)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"{len(state['runs'])} runs are kept in {folder}; `course compare-methods --resume` "
                                "(same options) runs the rest") from None
    result["wall_seconds"] = round(state.get("seconds", 0.0) + time.perf_counter() - start, 1)
    path = save_results(results_name("compare_methods", result["model"]) if config.model != "smollm2-135m-instruct"
                        else "compare_methods", {"command": command_line("compare-methods", config), **result},
                        out=config.out or None)
    shutil.rmtree(folder, ignore_errors=True)
    print(f"wrote {path}")
    return 0


COMMANDS = {"compare-methods": ("lesson 11: full fine-tuning, LoRA, rsLoRA, DoRA, PiSSA, QLoRA, AdaLoRA, IA3, prompt "
                                "and prefix tuning (each its own learning rate, 3 seeds) beside zero-shot, few-shot "
                                "and BM25 few-shot on lesson 06's task -> data/results/compare_methods.json; "
                                "--resume keeps the runs an interrupted one finished", (CompareConfig,), _run)}
