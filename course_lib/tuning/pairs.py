"""On-policy preference pairs: the SFT model's own answers, scored by a rule a program checks (lesson 07).

`course dpo-pairs` samples several answers per prompt from lesson 06's model (temperature > 0), scores
each with `docstring_score`, and keeps the best and the worst as chosen and rejected — prompts whose
samples all score the same give no pair (Tajwar et al. 2024; Xu et al. 2024: on-policy pairs). It
writes data/preferences-on-policy/ (pairs, every sample with its score, the SFT model's greedy answers)
with a data card, and data/results/dpo_pairs.json (the SFT model's preference accuracy on those pairs).
`win_rate` compares two models' answers to the same prompts by the same rule, with its uncertainty.
"""

from __future__ import annotations

import ast
import math
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from course_lib.data.datasets import data_dir, format_ok, read_jsonl, write_jsonl
from course_lib.evaluation.uncertainty import seeds_by_items
from course_lib.metrics import rouge_l
from course_lib.models.base import set_seed
from course_lib.models.loading import load_tokenizer
from course_lib.results import BrokenInput
from course_lib.tuning import sft
from course_lib.tuning.dpo import pair_accuracy, sft_reference

__all__ = ["PAIR_FIELDS", "SAMPLE_FIELDS", "parameters_of", "names_covered", "score_parts", "docstring_score",
           "sample_answers", "greedy_answers", "on_policy_pair", "outcomes", "win_rate", "PairsConfig",
           "pairs_dir", "on_policy_rows", "sample_rows", "split_rows", "pairs_run", "write_pairs_card"]

PAIR_FIELDS = {"prompt": str, "chosen": str, "rejected": str, "kind": str, "reference": str,
               "chosen_score": float, "rejected_score": float}  # data/preferences-on-policy/<split>.jsonl
SAMPLE_FIELDS = {"prompt": str, "reference": str, "samples": list, "scores": list, "sft_answer": str,
                 "sft_score": float}  # data/preferences-on-policy/<split>-samples.jsonl: every prompt


# ---------------------------------------------------------------- the rule

def parameters_of(prompt: str) -> list[str]:
    """The parameter names of the `def` line in a task prompt ([] when there is none), without self and cls, and
    without one-letter names (`a`, `x`): an answer's "a" could not be told from the parameter."""
    line = re.search(r"^def .*$", prompt, re.M)
    if line is None:
        return []
    try:
        args = ast.parse(line.group(0).rstrip(":") + ": pass").body[0].args
    except SyntaxError:
        return []
    ordered = [*args.posonlyargs, *args.args, args.vararg, *args.kwonlyargs, args.kwarg]  # the signature's order
    names = [a.arg for a in ordered if a is not None]
    return [n for n in names if n not in ("self", "cls") and len(n) > 1]


def names_covered(answer: str, params: Sequence[str]) -> float:
    """Share of `params` the answer names as a word (any case); 1.0 for a function without parameters."""
    if not params:
        return 1.0
    return sum(bool(re.search(rf"(?<![\w]){re.escape(p)}(?![\w])", answer, re.I)) for p in params) / len(params)


def score_parts(answer: str, prompt: str, reference: str) -> dict:
    """The rule's parts: the docstring format (lesson 06), the parameters named, ROUGE-L with the real docstring."""
    parts = {"format_ok": format_ok(answer), "names": names_covered(answer, parameters_of(prompt)),
             "rouge_l": rouge_l([answer], [reference])}
    parts["score"] = (parts["names"] + parts["rouge_l"]) / 2 if parts["format_ok"] else 0.0
    return parts


def docstring_score(answer: str, prompt: str, reference: str) -> float:
    """0 outside the docstring format; else the mean of the share of parameters named and ROUGE-L (in [0, 1])."""
    return score_parts(answer, prompt, reference)["score"]


# ---------------------------------------------------------------- answers, sampled and greedy

@torch.no_grad()
def _generate(model, tokenizer, prompts: Sequence[str], k: int, max_new_tokens: int, batch_size: int,
              **sampling) -> tuple[list[list[str]], list[list[bool]]]:
    side, tokenizer.padding_side = tokenizer.padding_side, "left"  # left padding: every answer starts at one column
    was_training, device = model.training, next(model.parameters()).device
    model.eval()
    texts, cut = [], []
    try:
        per_call = max(1, batch_size // k)
        for i in range(0, len(prompts), per_call):
            enc = tokenizer(list(prompts[i:i + per_call]), return_tensors="pt", padding=True,
                            add_special_tokens=False).to(device)
            out = model.generate(**enc, max_new_tokens=max_new_tokens, num_return_sequences=k,
                                 pad_token_id=tokenizer.pad_token_id, **sampling)[:, enc["input_ids"].shape[1]:]
            texts += [t.strip() for t in tokenizer.batch_decode(out, skip_special_tokens=True)]
            cut += [bool((row != tokenizer.eos_token_id).all()) for row in out]  # the cap, not the model, ended it
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return [texts[j * k:(j + 1) * k] for j in range(len(prompts))], [cut[j * k:(j + 1) * k] for j in range(len(prompts))]


def sample_answers(model, tokenizer, prompts: Sequence[str], k: int = 4, temperature: float = 0.7,
                   max_new_tokens: int = 40, batch_size: int = 64) -> list[list[str]]:
    """k answers per prompt (chat-rendered text), sampled at `temperature` (no top-k or top-p cut), in batches."""
    return _generate(model, tokenizer, prompts, k, max_new_tokens, batch_size, do_sample=True,
                     temperature=temperature, top_k=0, top_p=1.0)[0]


def greedy_answers(model, tokenizer, prompts: Sequence[str], max_new_tokens: int = 40,
                   batch_size: int = 48) -> tuple[list[str], list[bool]]:
    """The greedy answer to each prompt, batched, and whether the token cap cut it."""
    texts, cut = _generate(model, tokenizer, prompts, 1, max_new_tokens, batch_size, do_sample=False)
    return [t[0] for t in texts], [c[0] for c in cut]


def on_policy_pair(prompt: str, samples: Sequence[str], scores: Sequence[float]) -> dict | None:
    """The best-scored sample as chosen, the worst as rejected (the first of equals); None when all tie."""
    best, worst = max(scores), min(scores)
    if best == worst:
        return None
    return {"prompt": prompt, "chosen": samples[list(scores).index(best)],
            "rejected": samples[list(scores).index(worst)], "kind": "on-policy",
            "chosen_score": float(best), "rejected_score": float(worst)}


# ---------------------------------------------------------------- comparing two models' answers

def outcomes(after: Sequence[float], before: Sequence[float]) -> list[float]:
    """Per prompt: 1 if the `after` answer scores higher, ½ if equal, 0 if lower."""
    return [1.0 if a > b else 0.5 if a == b else 0.0 for a, b in zip(after, before, strict=True)]


def win_rate(per_prompt: Sequence[float] | Sequence[Sequence[float]]) -> dict:
    """Win rate with its standard error and 95 % interval.

    `per_prompt`: outcomes (1, ½, 0) per prompt, or one such list per seed on the same prompts. One seed:
    se = sample std of the outcomes / √n, the interval win rate ± 1.96·se — the prompts' noise only (another
    training run is not measured). Several seeds: averaged per prompt first (the seeds share the prompts),
    and the seeds' own part added — a seed that trained a better model wins on every prompt at once, which
    the per-prompt spread cannot see (`course_lib.evaluation.uncertainty.seeds_by_items`: se² = se_prompts²
    + σ²_seed / seeds, the interval from Student's t with Satterthwaite's degrees of freedom).
    """
    rows = [list(per_prompt)] if per_prompt and not isinstance(per_prompt[0], (list, tuple)) else [list(r) for r in per_prompt]
    values = [sum(col) / len(col) for col in zip(*rows, strict=True)]
    n = len(values)
    mean = sum(values) / n
    se = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n) if n > 1 else float("nan")
    flat = [x for r in rows for x in r]
    counts = {"n": n, "seeds": len(rows), "wins": flat.count(1.0), "ties": flat.count(0.5), "losses": flat.count(0.0)}
    if len(rows) == 1 or n < 2:
        return {"win_rate": mean, "se": se, "ci95": [mean - 1.96 * se, mean + 1.96 * se], **counts}
    two_way = seeds_by_items(rows)
    return {"win_rate": mean, "se": two_way["se"], "ci95": two_way["ci95"], "se_prompts": two_way["se_items"],
            "se_seeds": two_way["se_seeds"], "df": two_way["df"], **counts}


# ---------------------------------------------------------------- `course dpo-pairs`

@dataclass
class PairsConfig:
    """What `course dpo-pairs` samples; prompts are lesson 06's task rows, none that lesson 06 trained or tested on."""

    train_prompts: int = field(default=64, metadata={"help": "training prompts (chat train split, after lesson 06's 32)"})
    validation_prompts: int = field(default=24, metadata={"help": "validation prompts (after lesson 06's 16)"})
    test_prompts: int = field(default=48, metadata={"help": "held-out prompts (after lesson 06's 8 test rows)"})
    samples: int = field(default=4, metadata={"help": "answers sampled per prompt"})
    temperature: float = field(default=0.7, metadata={"help": "sampling temperature (no top-k, no top-p)"})
    max_new_tokens: int = field(default=40, metadata={"help": "token cap per answer (a cut answer fails the format)"})
    batch_size: int = field(default=64, metadata={"help": "sequences per generate call"})
    seed: int = field(default=0, metadata={"help": "sampling seed"})
    out: str = field(default="", metadata={"help": "results file; '' = data/results/dpo_pairs.json"})

    def offsets(self) -> dict[str, tuple[int, int]]:
        """split -> (first row, number of rows) of sft.task_rows(split): lesson 06 used the first rows of each."""
        return {"train": (32, self.train_prompts), "validation": (16, self.validation_prompts),
                "test": (8, self.test_prompts)}


def pairs_dir() -> Path:
    """data/preferences-on-policy: what `course dpo-pairs` writes."""
    return data_dir() / "preferences-on-policy"


def _read(name: str, fields: dict) -> list[dict]:
    path = pairs_dir() / name
    if not path.exists():
        raise BrokenInput(f"data/preferences-on-policy/{name} does not exist: `course dpo-pairs` makes it, or "
                          "`git checkout -- data/preferences-on-policy` restores the course's copy.")
    return read_jsonl(path, fields)


def on_policy_rows(split: str, n: int | None = None) -> list[dict]:
    """The first n on-policy pairs of `split`."""
    rows = _read(f"{split}.jsonl", PAIR_FIELDS)
    return rows[:n] if n else rows


def sample_rows(split: str) -> list[dict]:
    """Every prompt of `split` with its samples, their scores and the SFT model's greedy answer."""
    return _read(f"{split}-samples.jsonl", SAMPLE_FIELDS)


def split_rows(split: str, config: PairsConfig | None = None) -> list[dict]:
    """The task rows (lesson 06's chat rows) `course dpo-pairs` draws `split`'s prompts from."""
    start, n = (config or PairsConfig()).offsets()[split]
    return sft.task_rows(split)[start:start + n]


def pairs_run(config: PairsConfig | None = None, model_name: str | None = None, out_dir: Path | None = None) -> dict:
    """Sample, score and pair every split; write the pairs, the samples and the card; return the statistics."""
    config = config or PairsConfig()
    model_name = model_name or sft.lesson_model()
    out_dir = Path(out_dir or pairs_dir())
    start = time.perf_counter()
    tok, model = load_tokenizer(model_name), sft_reference(model_name)
    stats = {}
    for split in ("train", "validation", "test"):
        t0 = time.perf_counter()
        rows = split_rows(split, config)
        prompts = [sft.prompt_for(tok, r) for r in rows]
        set_seed(config.seed)
        samples = sample_answers(model, tok, prompts, config.samples, config.temperature, config.max_new_tokens,
                                 config.batch_size)
        greedy, cut = greedy_answers(model, tok, prompts, config.max_new_tokens)
        pairs, kept = [], []
        for row, texts, answer in zip(rows, samples, greedy):
            question, reference = row["messages"][0]["content"], row["messages"][-1]["content"]
            scores = [round(docstring_score(t, question, reference), 6) for t in texts]
            kept.append({"prompt": question, "reference": reference, "samples": texts, "scores": scores,
                         "sft_answer": answer, "sft_score": round(docstring_score(answer, question, reference), 6)})
            if (pair := on_policy_pair(question, texts, scores)) is not None:
                pairs.append({**pair, "reference": reference})
        write_jsonl(out_dir / f"{split}.jsonl", pairs)
        write_jsonl(out_dir / f"{split}-samples.jsonl", kept)
        stats[split] = {"prompts": len(rows), "pairs": len(pairs), "all_tied": len(rows) - len(pairs),
                        "sft_greedy_cut": sum(cut), "sft_greedy_format_rate": sum(map(format_ok, greedy)) / len(greedy),
                        "sft_greedy_score": sum(k["sft_score"] for k in kept) / len(kept),
                        "sample_format_rate": sum(format_ok(t) for s in samples for t in s) / (len(rows) * config.samples),
                        "sft_pair_accuracy": pair_accuracy(model, tok, pairs), "seconds": round(time.perf_counter() - t0, 1)}
        print(f"[dpo-pairs] {split}: {len(pairs)} pairs of {len(rows)} prompts; SFT accuracy "
              f"{stats[split]['sft_pair_accuracy']['accuracy']} ({stats[split]['seconds']:.0f} s)", flush=True)
    write_pairs_card(out_dir, config, stats)
    return {"config": {k: v for k, v in asdict(config).items() if k != "out"}, "model": model_name, "splits": stats,
            "wall_seconds": round(time.perf_counter() - start, 1)}


def write_pairs_card(out_dir: Path, config: PairsConfig, stats: dict) -> None:
    """data/preferences-on-policy/README.md: what the pairs are, how they were made, their sizes."""
    table = "\n".join(f"| {s} | {v['prompts']} | {v['pairs']} | {v['all_tied']} |" for s, v in stats.items())
    (out_dir / "README.md").write_text(
        "# On-policy preference pairs: lesson 06's model's own answers, best against worst\n\n"
        "Pairs for lesson 07 (DPO and its variants), made by `course dpo-pairs` (course_lib/tuning/pairs.py, "
        f"`pairs_run`). For each prompt (lesson 06's task: \"Explain what the Python function `X` does.\" and X's "
        f"signature), lesson 06's model (smollm2-135m-instruct with data/adapters/sft-docstring) sampled {config.samples} "
        f"answers at temperature {config.temperature} (no top-k or top-p cut, at most {config.max_new_tokens} new tokens, "
        f"seed {config.seed}). Each answer is scored by `docstring_score`:\n\n- 0 if it is not in the docstring format "
        "(lesson 06's `format_ok`: one line, at most 25 words, a final full stop);\n- else the mean of two shares in "
        "[0, 1]: the share of the function's parameters (from its `def` line, without self, cls and one-letter names; "
        "1 when none is left) the answer names as a word, "
        "and ROUGE-L (F-measure, with stemming) against the first paragraph of the function's real docstring.\n\n"
        "`chosen` is the best-scored sample and `rejected` the worst; a prompt whose samples all score the same gives "
        "no pair. Files: `<split>.jsonl` holds the pairs (`prompt`, `chosen`, `rejected`, `kind` = \"on-policy\", "
        "`reference`, both scores); `<split>-samples.jsonl` holds every prompt with its samples, their scores, and "
        "the model's greedy answer (`sft_answer`, `sft_score`): the \"before\" of lesson 07's comparisons.\n\n"
        "Prompts come from data/instructions/chat's splits (a hash of the prompt decides the split), after the rows "
        "lesson 06 trained, validated and tested on: no prompt is in two splits, or in lesson 06's runs.\n\n"
        f"## Size\n\n| split | prompts | pairs | all samples tied |\n|---|---|---|---|\n{table}\n\n"
        "## Licence\n\nPrompts and references: text from the CPython standard library, PSF-2.0. Answers: generated by "
        "SmolLM2-135M-Instruct (Apache-2.0) with lesson 06's adapter.\n", encoding="utf-8")
