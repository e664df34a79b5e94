"""Catastrophic forgetting: measure it, and the levers that reduce it (lesson 05).

Two numbers per fine-tuned model, both in nats per token, both "bigger = more":
- target gain  = ln PPL_target(before) − ln PPL_target(after): how much the target was learned;
- forgetting   = ln PPL_general(after) − ln PPL_general(before): how much worse the model got at
  general text it never trained on (data/general). Positive means it forgot; 0 means no change.
A skill probe sits beside perplexity: top-1 next-token accuracy on the same general text.

Mitigations are small reusable pieces that plug into `course_lib.training.train`: replay
(`replay_batches` → `batches=`), EWC (`fisher_diagonal` + `EWCPenalty` → `extra_loss=`), LoRA
(peft), frozen lower layers (`course_lib.freezing.set_trainable_groups`), and the learning rate. `run_experiment`
trains every configuration over several seeds and writes data/results/forgetting.json
(`course forgetting`).
"""

from __future__ import annotations

import copy
import json
import math
import platform
import random
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch

from course_lib.data import data_dir, load_course_dataset
from course_lib.freezing import set_trainable_groups
from course_lib.metrics import mean_nll
from course_lib.models import count_parameters, get_device, set_seed
from course_lib.training import TrainConfig, collator_for, tokenize_causal, train

__all__ = ["forgetting", "target_gain", "next_token_accuracy", "instruction_text", "area_text", "greedy_answers",
           "prompt_of", "TaskData",
           "load_task_data", "measure", "replay_mix", "replay_batches", "fisher_diagonal", "ewc_penalty",
           "EWCPenalty", "add_lora", "RunSpec", "ExperimentConfig", "default_runs",
           "run_one", "run_experiment", "summarize", "COMMANDS"]


# ---------------------------------------------------------------- the two numbers and the probe

def forgetting(ppl_before: float, ppl_after: float) -> float:
    """ln(PPL_after / PPL_before) on general text, nats/token; > 0 means the model forgot (lesson 05)."""
    return math.log(ppl_after) - math.log(ppl_before)


def target_gain(ppl_before: float, ppl_after: float) -> float:
    """ln(PPL_before / PPL_after) on the target's validation set; > 0 means it learned (lesson 05)."""
    return math.log(ppl_before) - math.log(ppl_after)


@torch.no_grad()
def next_token_accuracy(model, tokenizer, texts: Sequence[str], max_length: int = 128,
                        batch_size: int = 16) -> float:
    """Share of tokens whose most likely prediction is the true next token (lesson 05's skill probe).

    Windows are cut exactly as in `course_lib.metrics.mean_nll`, so both see the same tokens.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    windows = []
    for text in texts:
        ids = tokenizer(text, verbose=False)["input_ids"]
        windows += [ids[i:i + max_length] for i in range(0, len(ids), max_length) if len(ids[i:i + max_length]) > 1]
    correct, total = 0, 0
    for start in range(0, len(windows), batch_size):
        chunk = windows[start:start + batch_size]
        width = max(len(w) for w in chunk)
        ids = torch.full((len(chunk), width), tokenizer.pad_token_id or 0, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, w in enumerate(chunk):
            ids[i, :len(w)], mask[i, :len(w)] = torch.tensor(w), 1
        ids, mask = ids.to(device), mask.to(device)
        pred = model(input_ids=ids, attention_mask=mask).logits[:, :-1].argmax(-1)  # (B, T-1)
        keep = mask[:, 1:].bool()
        correct += int((pred == ids[:, 1:])[keep].sum())
        total += int(keep.sum())
    model.train(was_training)
    if total == 0:
        raise ValueError("next_token_accuracy needs at least one text of two or more tokens.")
    return correct / total


# ---------------------------------------------------------------- the tasks

def instruction_text(row: dict) -> str:
    """An Alpaca row as one training text: task A of lesson 05."""
    prompt = row["instruction"] + (f"\n\n{row['input']}" if row["input"] else "")
    return f"### Instruction:\n{prompt}\n\n### Response:\n{row['output']}"


def area_text(row: dict) -> str:
    """A classification row as an instruction whose answer is the area's name: task B of lesson 05."""
    return (f"### Instruction:\nWhich area of the standard library is this from?\n\n{row['text']}"
            f"\n\n### Response:\n{row['area']}")


@dataclass
class TaskData:
    """The texts of one forgetting experiment (lesson 05)."""

    target_train: list[str]  # task A: what we fine-tune on
    target_val: list[str]  # task A, held out: the target's perplexity
    general: list[str]  # the yardstick: held-out general text, never trained on
    replay: list[str]  # old text (pre-training corpus) for replay and the Fisher; never the yardstick
    task_b_train: list[str] = field(default_factory=list)  # task B, for sequential fine-tuning
    task_b_val: list[str] = field(default_factory=list)


def load_task_data(max_replay: int = 2000, max_val: int = 150) -> TaskData:
    """Task A = the instruction set, task B = area labelling, general = data/general, replay = corpus."""
    alpaca = load_course_dataset("alpaca")
    cls = load_course_dataset("classification")
    corpus = load_course_dataset("corpus", "train")
    return TaskData(target_train=[instruction_text(r) for r in alpaca["train"]],
                    target_val=[instruction_text(r) for r in alpaca["validation"]][:max_val],
                    general=list(load_course_dataset("general", "test")["text"]),
                    replay=list(corpus["text"][:max_replay]),
                    task_b_train=[area_text(r) for r in cls["train"]],
                    task_b_val=[area_text(r) for r in cls["validation"]][:max_val])


@torch.no_grad()
def greedy_answers(model, tokenizer, prompts: Sequence[str], max_new_tokens: int = 16) -> list[str]:
    """The model's greedy continuation of each prompt, one prompt at a time (no padding to get wrong)."""
    device = next(model.parameters()).device
    answers = []
    for prompt in prompts:
        ids = tokenizer(prompt, return_tensors="pt")["input_ids"].to(device)
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             do_sample=False, pad_token_id=tokenizer.pad_token_id)
        answers.append(tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip())
    return answers


def prompt_of(text: str) -> str:
    """The prompt part of an `instruction_text` / `area_text`: everything up to the response."""
    return text[:text.index("### Response:\n") + len("### Response:\n")]


def measure(model, tokenizer, data: TaskData, max_length: int = 128, task_b: bool = True) -> dict[str, float]:
    """General perplexity and next-token accuracy, target perplexity (and task B's) of one model (lesson 05)."""
    out = {"general_ppl": math.exp(mean_nll(model, tokenizer, data.general, max_length)),
           "general_acc": next_token_accuracy(model, tokenizer, data.general, max_length),
           "target_ppl": math.exp(mean_nll(model, tokenizer, data.target_val, max_length))}
    if task_b and data.task_b_val:
        out["task_b_ppl"] = math.exp(mean_nll(model, tokenizer, data.task_b_val, max_length))
    return out


# ---------------------------------------------------------------- replay

def replay_mix(target_rows: Sequence, replay_rows: Sequence, fraction: float, batch_size: int,
               seed: int = 0) -> Iterator[list]:
    """Endless batches of rows: round(fraction × batch_size) replayed rows, the rest target rows (lesson 05)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"replay fraction must be between 0 and 1, got {fraction}.")
    n_replay = round(fraction * batch_size)
    if (n_replay and not replay_rows) or (n_replay < batch_size and not target_rows):
        raise ValueError("replay_mix needs target rows, and replay rows when fraction > 0.")
    rng = random.Random(seed)

    def shuffled_forever(rows: Sequence) -> Iterator:
        while True:
            order = list(range(len(rows)))
            rng.shuffle(order)
            yield from (rows[i] for i in order)

    target = shuffled_forever(target_rows) if n_replay < batch_size else iter(())
    old = shuffled_forever(replay_rows) if n_replay else iter(())
    while True:
        batch = [next(old) for _ in range(n_replay)] + [next(target) for _ in range(batch_size - n_replay)]
        rng.shuffle(batch)  # replayed rows are not always at the front
        yield batch


def replay_batches(target_rows: Sequence, replay_rows: Sequence, fraction: float, batch_size: int,
                   collate_fn: Callable, seed: int = 0) -> Iterator[dict]:
    """`replay_mix`, collated: pass as `train(..., batches=...)` (lesson 05)."""
    return map(collate_fn, replay_mix(target_rows, replay_rows, fraction, batch_size, seed))


# ---------------------------------------------------------------- EWC

def fisher_diagonal(model, rows: Sequence, collate_fn: Callable) -> dict[str, torch.Tensor]:
    """Diagonal empirical Fisher: mean over sequences of each trainable parameter's squared gradient (lesson 05).

    One sequence per backward pass, because the Fisher averages squared *per-example*
    gradients; squaring a batch's mean gradient would underestimate it.
    """
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    fisher = {n: torch.zeros_like(p) for n, p in params.items()}
    was_training = model.training
    model.eval()  # no dropout: the Fisher of the model we keep
    device = next(model.parameters()).device
    for row in rows:
        batch = {k: v.to(device) for k, v in collate_fn([row]).items()}
        model.zero_grad(set_to_none=True)
        model(**batch).loss.backward()
        for n, p in params.items():
            if p.grad is not None:
                fisher[n] += p.grad.detach() ** 2
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return {n: f / max(len(rows), 1) for n, f in fisher.items()}


def ewc_penalty(params: dict[str, torch.Tensor], anchor: dict[str, torch.Tensor],
                fisher: dict[str, torch.Tensor], lam: float) -> torch.Tensor:
    """(λ/2) Σ_i F_i (θ_i − θ*_i)² over the parameters named in `fisher` (Kirkpatrick et al. 2017, eq. 3)."""
    total = sum((fisher[n] * (params[n] - anchor[n]) ** 2).sum() for n in fisher)
    return lam / 2 * total if fisher else torch.tensor(0.0)


class EWCPenalty:
    """The EWC penalty anchored at the model's current weights θ*; pass as `train(extra_loss=...)`."""

    def __init__(self, model: torch.nn.Module, fisher: dict[str, torch.Tensor], lam: float):
        self.fisher, self.lam = fisher, lam
        self.anchor = {n: p.detach().clone() for n, p in model.named_parameters() if n in fisher}

    def __call__(self, model: torch.nn.Module) -> torch.Tensor:
        return ewc_penalty(dict(model.named_parameters()), self.anchor, self.fisher, self.lam)


# ---------------------------------------------------------------- what trains

def add_lora(model: torch.nn.Module, r: int, alpha_per_rank: float = 2.0) -> torch.nn.Module:
    """peft LoRA on every linear layer of the body, lora_alpha = 2·r so every rank has scaling 2."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=r, lora_alpha=alpha_per_rank * r, lora_dropout=0.0, target_modules="all-linear",
                        task_type="CAUSAL_LM")
    return get_peft_model(model, config)


# ---------------------------------------------------------------- the experiment

@dataclass
class RunSpec:
    """One configuration of the experiment: what trains and which mitigations are on (lesson 05)."""

    name: str
    method: str = "full"  # "full" | "lora" | "top" (only the top `top_layers` blocks train)
    learning_rate: float = 1e-3  # course-tiny was pretrained at a 2e-3 peak
    lora_r: int = 8  # with method="lora"
    top_layers: int = 1  # with method="top": how many top blocks train (embeddings stay frozen)
    replay_fraction: float = 0.0  # share of each batch taken from old text (pre-training corpus)
    ewc_lambda: float = 0.0  # EWC strength λ; 0 disables it
    task_b_steps: int = 0  # > 0: then fine-tune on task B this many steps (sequential fine-tuning)


def default_runs() -> list[RunSpec]:
    """The configurations `course forgetting` runs by default."""
    return [RunSpec("full"), RunSpec("full, lr/10", learning_rate=1e-4),
            *[RunSpec(f"LoRA r={r}", method="lora", lora_r=r, learning_rate=3e-3) for r in (1, 4, 16, 64)],
            RunSpec("top block only", method="top", top_layers=1),
            RunSpec("full + replay 25%", replay_fraction=0.25),
            RunSpec("full + EWC", ewc_lambda=1e4),
            RunSpec("A then B", task_b_steps=40)]


@dataclass
class ExperimentConfig:
    """Settings shared by every run of `run_experiment`."""

    seeds: tuple[int, ...] = (0, 1, 2)  # every configuration runs once per seed
    max_steps: int = 40  # optimizer steps on task A: 640 rows, about a quarter of an epoch
    batch_size: int = 16  # rows per step
    max_length: int = 128  # tokens per row (longer rows are cut)
    eval_steps: int = 10  # a curve point every this many steps
    curve_texts: int = 50  # texts of each set scored at each curve point (the final measure uses all)
    fisher_samples: int = 64  # old-text sequences the EWC Fisher is averaged over
    answer_prompts: int = 8  # task-A prompts answered greedily after A and after B (sequential runs)
    runs: list[RunSpec] = field(default_factory=default_runs)
    out: str = ""  # "" means data/results/forgetting.json


def _prepare(model, spec: RunSpec):
    if spec.method == "lora":
        return add_lora(model, spec.lora_r)
    if spec.method == "top":  # groups: embeddings (tied to the head), block 0, ..., top block + final norm
        set_trainable_groups(model, spec.top_layers)
        return model
    if spec.method != "full":
        raise ValueError(f"method must be 'full', 'lora' or 'top', not {spec.method!r}.")
    return model


def run_one(base_model, tokenizer, data: TaskData, spec: RunSpec, seed: int, config: ExperimentConfig,
            base: dict[str, float], fisher: dict[str, torch.Tensor] | None = None) -> dict:
    """Fine-tune a copy of `base_model` as `spec` says; its numbers relative to `base` (= measure of the base)."""
    set_seed(seed)  # LoRA's A matrices are initialised here
    model = _prepare(copy.deepcopy(base_model), spec)
    collate = collator_for(tokenizer, "causal-lm")
    rows = tokenize_causal(tokenizer, data.target_train, config.max_length)
    n = config.curve_texts

    def curve_point(m) -> dict[str, float]:
        return {"target_nll": mean_nll(m, tokenizer, data.target_val[:n], config.max_length),
                "general_nll": mean_nll(m, tokenizer, data.general[:n], config.max_length)}

    tc = TrainConfig(learning_rate=spec.learning_rate, max_steps=config.max_steps, seed=seed, disable_tqdm=True,
                     per_device_train_batch_size=config.batch_size, eval_steps=config.eval_steps)
    batches = None
    if spec.replay_fraction:
        old = tokenize_causal(tokenizer, data.replay, config.max_length)
        batches = replay_batches(rows, old, spec.replay_fraction, config.batch_size, collate, seed)
    penalty = EWCPenalty(model, fisher, spec.ewc_lambda) if spec.ewc_lambda and fisher else None
    history = train(model, rows, tc, collate_fn=collate, evaluate=curve_point, extra_loss=penalty, batches=batches)
    after = measure(model, tokenizer, data, config.max_length, task_b=bool(spec.task_b_steps))
    result = {"name": spec.name, "seed": seed, **asdict(spec),
              "trainable_params": count_parameters(model, trainable_only=True), **after,
              "gain": target_gain(base["target_ppl"], after["target_ppl"]),
              "forgetting": forgetting(base["general_ppl"], after["general_ppl"]),
              "acc_drop": base["general_acc"] - after["general_acc"],
              "curve": {"step": history.eval_step, "target_nll": history.eval_metric("target_nll"),
                        "general_nll": history.eval_metric("general_nll")},
              "train_loss": history.loss}
    if spec.task_b_steps:  # sequential: now task B, then how much of A is left
        rows_b = tokenize_causal(tokenizer, data.task_b_train, config.max_length)
        tc_b = TrainConfig(learning_rate=spec.learning_rate, max_steps=spec.task_b_steps, seed=seed + 1000,
                           per_device_train_batch_size=config.batch_size, disable_tqdm=True)
        prompts = [prompt_of(t) for t in data.target_val[:config.answer_prompts]]
        result["answers_after_a"] = greedy_answers(model, tokenizer, prompts)
        train(model, rows_b, tc_b, collate_fn=collate)
        after_b = measure(model, tokenizer, data, config.max_length)
        result["answers_after_b"] = greedy_answers(model, tokenizer, prompts)
        result["after_b"] = after_b
        result["drop_on_a"] = math.log(after_b["target_ppl"]) - math.log(after["target_ppl"])  # > 0: A got worse
        result["forgetting_after_b"] = forgetting(base["general_ppl"], after_b["general_ppl"])
    return result


def run_experiment(model, tokenizer, data: TaskData, config: ExperimentConfig = ExperimentConfig(),
                   out: Path | str | None = None, log: Callable[[str], None] | None = print) -> dict:
    """Every run of `config` over every seed; written as JSON to `out` (default data/results/forgetting.json)."""
    from course_lib.doctor import versions_line

    start = time.perf_counter()
    device = get_device()
    model = model.to(device)
    base = measure(model, tokenizer, data, config.max_length)
    n = config.curve_texts
    base_curve = {"target_nll": mean_nll(model, tokenizer, data.target_val[:n], config.max_length),
                  "general_nll": mean_nll(model, tokenizer, data.general[:n], config.max_length)}
    fisher = None
    if any(s.ewc_lambda for s in config.runs):
        old = tokenize_causal(tokenizer, data.replay[:config.fisher_samples], config.max_length)
        fisher = fisher_diagonal(model, old, collator_for(tokenizer, "causal-lm"))
    runs = []
    for spec in config.runs:
        for seed in config.seeds:
            t0 = time.perf_counter()
            runs.append(run_one(model, tokenizer, data, spec, seed, config, base, fisher))
            if log:
                r = runs[-1]
                log(f"{spec.name:20s} seed {seed}: gain {r['gain']:+.3f}  forgetting {r['forgetting']:+.3f}  "
                    f"({time.perf_counter() - t0:.0f} s)")
    name = str(getattr(model, "name_or_path", ""))
    results = {"meta": {"model": Path(name).name if Path(name).is_dir() else name, "versions": versions_line(),
                        "machine": platform.machine(), "threads": torch.get_num_threads(),
                        "seconds": round(time.perf_counter() - start, 1),
                        "command": "course forgetting", "config": asdict(config),
                        "sign_convention": "gain = ln PPL_target before - after; forgetting = ln PPL_general "
                                           "after - before; both nats/token, > 0 = learned / forgot"},
               "base": {**base, "curve": base_curve}, "runs": runs}
    path = Path(out or config.out or data_dir() / "results" / "forgetting.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return results


def summarize(results: dict, keys: Sequence[str] = ("gain", "forgetting", "acc_drop")) -> dict[str, dict]:
    """By configuration name: {key: (mean, sample std over seeds)} for each key the runs have (lesson 05)."""
    by_name: dict[str, list[dict]] = {}
    for run in results["runs"]:
        by_name.setdefault(run["name"], []).append(run)
    out = {}
    for name, runs in by_name.items():
        out[name] = {"seeds": len(runs)}
        for k in keys:
            values = [r[k] for r in runs if k in r]
            if values:
                out[name][k] = (statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0)
    return out


# ---------------------------------------------------------------- `course forgetting`

def _cli_args(p) -> None:
    p.add_argument("--steps", type=int, default=None, help="optimizer steps on task A and on B (default 40)")
    p.add_argument("--seeds", type=int, default=None, help="how many seeds per configuration (default 3)")
    p.add_argument("--out", default="", help="output file (default data/results/forgetting.json)")


def _cli_run(args) -> int:
    from course_lib.models import load_base_model, load_tokenizer

    config = ExperimentConfig(out=args.out)
    if args.steps:
        config.max_steps = args.steps
        for spec in config.runs:
            spec.task_b_steps = args.steps if spec.task_b_steps else 0
    if args.seeds:
        config.seeds = tuple(range(args.seeds))
    results = run_experiment(load_base_model(), load_tokenizer(), load_task_data(), config)
    print(f"base: general PPL {results['base']['general_ppl']:.2f}, target PPL {results['base']['target_ppl']:.2f}")
    for name, s in summarize(results).items():
        print(f"{name:20s} gain {s['gain'][0]:+.3f} ± {s['gain'][1]:.3f}   "
              f"forgetting {s['forgetting'][0]:+.3f} ± {s['forgetting'][1]:.3f}")
    print(f"wrote {config.out or data_dir() / 'results' / 'forgetting.json'} in {results['meta']['seconds']:.0f} s")
    return 0


COMMANDS = {"forgetting": ("fine-tune course-tiny under every forgetting configuration over 3 seeds; "
                           "writes data/results/forgetting.json (lesson 05)", _cli_args, _cli_run)}
