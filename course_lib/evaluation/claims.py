"""The headline comparisons of lessons 01-07, re-tested at 95 % from the files they rest on (lesson 10).

Each claim names two arms and where their numbers are: per seed (three seeds: Welch's t), per seed and
item (lesson 07's win rates: `seeds_by_items_difference`, both noises at once), per item (one
run: McNemar for 0/1 outcomes, the exact sign-flip permutation test otherwise, with the paired bootstrap's
interval) or only as a proportion on n items (one run: a z-test of two proportions). A one-run comparison
that passes is marked "items only (1 seed)": it tested the items' noise, not the training run's. Two sources of noise matter: the training run (seeds) and the test items
(another sample of items would give other scores). Where a file kept per-seed accuracies but not each
item's outcome, the items' part can only be bounded: `retest` adds the unpaired binomial standard
error of both arms, which overstates it (the same items make paired scores agree), and says so.

    CLAIMS                 the claims, in lesson order
    retest(claim)      {"diff", "low", "high", "p", "test", "verdict", "n", ...}
    claims_table()         every claim tested
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist, mean
from typing import Callable

from course_lib.data.datasets import data_dir, format_ok, read_jsonl
from course_lib.evaluation.uncertainty import (mcnemar, paired_bootstrap, proportion_stderr, seeds_by_items_difference,
                                               sign_flip, welch)
from course_lib.metrics import rouge_l
from course_lib.results import load_results

__all__ = ["Claim", "CLAIMS", "retest", "claims_table"]


@dataclass
class Claim:
    """A lesson's comparison: arm a against arm b, what the lesson says, and how to read the numbers."""

    lesson: str
    says: str  # the lesson's claim, in short
    a: str
    b: str
    data: Callable[[], dict]  # -> {"kind": "seeds" | "seeds_by_items" | "items" | "proportions" | "none", ...}
    tie: bool = False  # the lesson claims no difference (a tie), not a winner
    lower_is_better: bool = False


def _runs(file: str, key: str, where: dict, metric: str) -> list[float]:
    return [r[metric] for r in load_results(file)[key] if all(r.get(k) == v for k, v in where.items())]


def _last(file: str, key: str, where: dict, metric: str) -> list[float]:
    return [r[metric][-1] for r in load_results(file)[key] if all(r.get(k) == v for k, v in where.items())]


def _validation_items() -> int:
    return len(read_jsonl(data_dir() / "classification" / "validation.jsonl"))


def _curve(method_a: str, method_b: str, size: int) -> Callable[[], dict]:
    return lambda: {"kind": "seeds", "items": _validation_items(),
                    "a": _runs("learning_curve", "runs", {"method": method_a, "size": size}, "accuracy"),
                    "b": _runs("learning_curve", "runs", {"method": method_b, "size": size}, "accuracy")}


def _real_curve(method_a: str, method_b: str, size: int) -> Callable[[], dict]:
    def data() -> dict:
        file = load_results("learning_curve_smollm2-135m-instruct")
        acc = {r["method"]: r["accuracy"] for r in file["runs"] if r["size"] == size}
        return {"kind": "proportions", "items": file["config"]["eval_rows"], "a": acc[method_a], "b": acc[method_b]}
    return data


def _sweep(key: str, where_a: dict, where_b: dict, metric: str, last: bool = True, items: bool = True):
    pick = _last if last else _runs
    return lambda: {"kind": "seeds", "items": _validation_items() if items else None,
                    "a": pick("lr_sweep", key, where_a, metric), "b": pick("lr_sweep", key, where_b, metric)}


def _ablation(key: str, where_a: dict, where_b: dict) -> Callable[[], dict]:
    return lambda: {"kind": "seeds", "items": None, "a": _runs("lora_rank_ablation", key, where_a, "perplexity"),
                    "b": _runs("lora_rank_ablation", key, where_b, "perplexity")}


def _forgetting(name_a: str, name_b: str) -> Callable[[], dict]:
    return lambda: {"kind": "seeds", "items": None, "a": _runs("forgetting", "runs", {"name": name_a}, "forgetting"),
                    "b": _runs("forgetting", "runs", {"name": name_b}, "forgetting")}


def _sft(metric: str, a: tuple, b: tuple) -> Callable[[], dict]:
    def answers(file: dict, path: tuple) -> list[str]:
        for key in path:
            file = file[key]
        return file["answers"]

    def data() -> dict:
        file = load_results("sft")
        refs = file["references"]
        score = (lambda ans: [float(format_ok(x)) for x in ans]) if metric == "format" else \
            (lambda ans: [rouge_l([x], [r]) for x, r in zip(ans, refs)])
        return {"kind": "items", "binary": metric == "format", "a": score(answers(file, a)), "b": score(answers(file, b))}
    return data


def _dpo_win_rates(arm_a: str, arm_b: str) -> Callable[[], dict]:
    """Lesson 07's `course dpo`: each seed's outcome (1, ½, 0 against lesson 06's answer) on each held-out prompt."""
    def data() -> dict:
        runs = load_results("dpo")["runs"]
        outcomes = {arm: [r["after"]["outcomes"] for r in runs if f"{r['loss']}@{r['learning_rate']:g}" == arm]
                    for arm in (arm_a, arm_b)}
        return {"kind": "seeds_by_items", "a": outcomes[arm_a], "b": outcomes[arm_b]}
    return data


CLAIMS = [
    Claim("01", "pre-training is worth it: full fine-tuning beats training from scratch (whole training set)",
          "from scratch", "full fine-tuning", _curve("scratch", "full", 1499)),
    Claim("01", "full fine-tuning pulls ahead of the top blocks from 400 examples on",
          "top blocks", "full fine-tuning", _curve("top_blocks", "full", 400)),
    Claim("01", "full fine-tuning and the top blocks tie at 100 examples",
          "top blocks", "full fine-tuning", _curve("top_blocks", "full", 100), tie=True),
    Claim("01", "SmolLM2, 100 examples: the linear probe beats full fine-tuning",
          "full fine-tuning", "linear probe", _real_curve("full", "linear_probe", 100)),
    Claim("01", "SmolLM2, 25 examples: the linear probe beats full fine-tuning",
          "full fine-tuning", "linear probe", _real_curve("full", "linear_probe", 25)),
    Claim("02", "LR 3e-4 and 1e-3 cannot be told apart (final validation loss)",
          "1e-3", "3e-4", _sweep("learning_rates", {"learning_rate": 0.001}, {"learning_rate": 0.0003}, "val_loss",
                                 items=False), tie=True, lower_is_better=True),
    Claim("02", "a constant LR beats warm-up + cosine on these short runs",
          "cosine", "constant", _sweep("schedules", {"schedule": "cosine"}, {"schedule": "constant"}, "val_accuracy")),
    Claim("02", "a constant LR beats warm-up + linear decay on these short runs",
          "linear", "constant", _sweep("schedules", {"schedule": "linear"}, {"schedule": "constant"}, "val_accuracy")),
    Claim("02", "layer-wise decay 0.8 ties with one LR (top LR 2e-3)",
          "one LR", "decay 0.8", _sweep("layerwise", {"layer_factor": 1.0, "top_learning_rate": 0.002},
                                        {"layer_factor": 1.25, "top_learning_rate": 0.002}, "accuracy", last=False),
          tie=True),
    Claim("02", "ULMFiT's ÷2.6 per group stays behind one LR (top LR 2e-3)",
          "÷2.6", "one LR", _sweep("layerwise", {"layer_factor": 2.6, "top_learning_rate": 0.002},
                                   {"layer_factor": 1.0, "top_learning_rate": 0.002}, "accuracy", last=False)),
    Claim("03", "every higher rank helped (α = 2r; the smallest step, r 16 → 64, attention)",
          "r = 16", "r = 64", _ablation("runs", {"targets": "attention", "scaling": "alpha_2r", "r": 16},
                                        {"targets": "attention", "scaling": "alpha_2r", "r": 64}), lower_is_better=True),
    Claim("03", "every higher rank helped (rsLoRA; r 16 → 64, attention)",
          "r = 16", "r = 64", _ablation("runs", {"targets": "attention", "scaling": "rslora", "r": 16},
                                        {"targets": "attention", "scaling": "rslora", "r": 64}), lower_is_better=True),
    Claim("03", "at a fixed budget, all linear layers at r = 8 beat attention alone at r = 20",
          "attention r = 20", "all linear r = 8", _ablation("budget", {"targets": "attention"},
                                                            {"targets": "all-linear"}), lower_is_better=True),
    Claim("03", "SmolLM2: rank helped too (r 8 → 64, one seed)", "r = 8", "r = 64",
          lambda: {"kind": "none", "why": "one seed, no per-example perplexities kept"}, lower_is_better=True),
    Claim("04", "QLoRA reaches about the same perplexity as 16-bit LoRA after 8 steps", "16-bit LoRA", "QLoRA",
          lambda: {"kind": "none", "why": "one live run, no seeds or per-example losses kept"}, tie=True),
    Claim("05", "LoRA forgets less than full fine-tuning (r = 16)", "full", "LoRA r = 16",
          _forgetting("full", "LoRA r=16"), lower_is_better=True),
    Claim("05", "full fine-tuning at lr/10 forgets less than every LoRA rank (r = 1, the least of them)",
          "LoRA r = 1", "full, lr/10", _forgetting("LoRA r=1", "full, lr/10"), lower_is_better=True),
    Claim("05", "replay (25 %) removes most of the forgetting", "full", "full + replay",
          _forgetting("full", "full + replay 25%"), lower_is_better=True),
    Claim("05", "EWC removes the forgetting", "full", "full + EWC", _forgetting("full", "full + EWC"),
          lower_is_better=True),
    Claim("06", "after SFT every answer is in the docstring format (was 2 of 8)", "before", "after",
          _sft("format", ("before", "chat"), ("after", "chat"))),
    Claim("06", "after SFT ROUGE-L about doubled", "before", "after",
          _sft("rouge", ("before", "chat"), ("after", "chat"))),
    Claim("06", "reply-only came out ahead of whole-text training (ROUGE-L; the lesson: a pointer)",
          "whole text", "reply only", _sft("rouge", ("whole_text", "after", "chat"), ("after", "chat"))),
    Claim("06", "reply-only came out ahead of whole-text training (format; the lesson: a pointer)",
          "whole text", "reply only", _sft("format", ("whole_text", "after", "chat"), ("after", "chat"))),
    Claim("07", "DPO + SFT wins where plain DPO does not (win rate against lesson 06's answers, held out)",
          "DPO", "DPO + SFT", _dpo_win_rates("dpo@0.001", "dpo+sft@0.001")),
]


def _z_p(z: float) -> float:
    return 2 * (1 - NormalDist().cdf(abs(z)))


def retest(claim: Claim) -> dict:
    """The claim re-tested: difference b − a, its 95 % interval, p, the test, n and the verdict."""
    d = claim.data()
    row = {"lesson": claim.lesson, "says": claim.says, "a": claim.a, "b": claim.b}
    if d["kind"] == "none":
        return {**row, "n": "1 run", "test": "—", "verdict": "cannot be tested", "why": d["why"]}
    if d["kind"] == "seeds":
        w = welch(d["a"], d["b"])
        row.update(diff=w["diff"], low=w["low"], high=w["high"], p=w["p"], mean_a=mean(d["a"]), mean_b=mean(d["b"]),
                   n=f"{len(d['a'])} + {len(d['b'])} seeds" + (f" × {d['items']} items" if d["items"] else ""),
                   test="Welch t over seeds")
        if d["items"]:  # accuracies on a fixed set: add the items' unpaired standard error (an upper bound)
            se = math.sqrt(w["se"] ** 2 + proportion_stderr(row["mean_a"], d["items"]) ** 2
                           + proportion_stderr(row["mean_b"], d["items"]) ** 2)
            row.update(p_with_items=_z_p(w["diff"] / se), low_with_items=w["diff"] - 1.96 * se,
                       high_with_items=w["diff"] + 1.96 * se)
    elif d["kind"] == "seeds_by_items":  # each seed's outcome on each item: both noises, as lesson 07 counts them
        w = seeds_by_items_difference(d["a"], d["b"])
        row.update(diff=w["diff"], low=w["low"], high=w["high"], p=w["p"],
                   mean_a=mean(mean(seed) for seed in d["a"]), mean_b=mean(mean(seed) for seed in d["b"]),
                   n=f"{len(d['a'])} + {len(d['b'])} seeds × {len(d['a'][0])} items",
                   test="seeds × items (t, Satterthwaite)")
    elif d["kind"] == "items":
        # p from an exact test (McNemar; sign flips for continuous scores): the bootstrap's percentile
        # interval is too narrow on a handful of items, so it gives the interval only
        test = mcnemar(d["a"], d["b"]) if d["binary"] else sign_flip(d["a"], d["b"])
        boot = paired_bootstrap(d["a"], d["b"])
        row.update(diff=boot["diff"], low=boot["low"], high=boot["high"], p=test["p"], mean_a=mean(d["a"]),
                   mean_b=mean(d["b"]), n=f"1 run × {len(d['a'])} items", one_run=True,
                   test="McNemar (exact)" if d["binary"] else "sign flips (exact)" if test["exact"] else "sign flips")
    else:  # one run, a proportion per arm on n items
        n, pa, pb = d["items"], d["a"], d["b"]
        se = math.sqrt(proportion_stderr(pa, n) ** 2 + proportion_stderr(pb, n) ** 2)
        row.update(diff=pb - pa, low=pb - pa - 1.96 * se, high=pb - pa + 1.96 * se, p=_z_p((pb - pa) / se),
                   mean_a=pa, mean_b=pb, n=f"1 run × {n} items", test="two proportions (z), unpaired", one_run=True)
    better = row["diff"] < 0 if claim.lower_is_better else row["diff"] > 0
    significant = row["p"] < 0.05
    if claim.tie:
        row["verdict"] = "tie holds" if not significant else "not a tie"
    elif significant and better:
        if row.get("one_run"):  # one training run: another seed could move it; only the items were tested
            row["verdict"] = "items only (1 seed)"
        else:
            row["verdict"] = "yes" if row.get("p_with_items", 0.0) < 0.05 else "seeds only"
    else:
        row["verdict"] = "no" if not significant else "reversed"
    return row


def claims_table() -> list[dict]:
    """Every claim of CLAIMS, tested."""
    return [retest(c) for c in CLAIMS]
