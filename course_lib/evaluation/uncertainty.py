"""How sure is a score? Standard errors, paired tests between two models, and how many items a test needs (lesson 10).

    mean_stderr(scores)                  the harness's standard error of a mean (lm-eval `mean_stderr`)
    paired_bootstrap(a, b)               the difference b − a on the same items, its 95 % interval and p
    mcnemar(a, b)                        the exact test for two 0/1 outcomes per item (only disagreements count)
    sign_flip(a, b)                      the permutation test for paired scores: exact over every sign (n ≤ 16)
    welch(a, b)                          two sets of runs (seeds), unpaired: Welch's t
    seeds_by_items(rows)                 a mean over seeds × items (each seed scored on the same items): its standard
                                         error with both the items' and the seeds' noise, and its 95 % interval
    seeds_by_items_difference(a, b)      the same for mean(b) − mean(a), two arms scored on the same items
    items_needed(sd, delta)              items for a difference delta at 95 % and 80 % power (normal approximation)

All take plain sequences (one number per item or per run) and return small dicts of floats, so a results
file that kept each item's outcome can be re-tested without rerunning anything.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Sequence

import numpy as np

__all__ = ["mean_stderr", "proportion_stderr", "paired_bootstrap", "mcnemar", "sign_flip", "welch", "seeds_by_items",
           "seeds_by_items_difference", "items_needed", "detectable_difference", "Z95"]

Z95 = NormalDist().inv_cdf(0.975)  # 1.95996…: two-sided 95 %


def mean_stderr(scores: Sequence[float]) -> float:
    """Standard error of the mean as lm-eval reports it: sample standard deviation (n − 1) over √n.

    For 0/1 scores with mean p this is √(p(1 − p)/(n − 1)), a little above the textbook √(p(1 − p)/n).
    """
    n = len(scores)
    if n < 2:
        raise ValueError("a standard error needs at least two scores.")
    mean = sum(scores) / n
    return math.sqrt(sum((x - mean) ** 2 for x in scores) / (n - 1)) / math.sqrt(n)


def proportion_stderr(p: float, n: int) -> float:
    """The textbook standard error of a proportion p on n items, √(p(1 − p)/n) (for files that kept no items)."""
    return math.sqrt(p * (1 - p) / n)


def paired_bootstrap(a: Sequence[float], b: Sequence[float], iters: int = 10_000, seed: int = 0) -> dict[str, float]:
    """The mean difference b − a over the same items, resampled `iters` times (items with replacement).

    Returns {"diff", "low", "high" (the 2.5th and 97.5th percentiles of the resampled means), "p"}:
    p is twice the smaller share of resampled differences on either side of zero (capped at 1), the
    usual bootstrap two-sided p-value. Pairing matters: each resample keeps an item's two scores together,
    so what both models find easy or hard cancels out.
    """
    if len(a) != len(b) or len(a) < 2:
        raise ValueError(f"paired scores need the same items, at least two: got {len(a)} and {len(b)}.")
    d = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    n = len(d)
    means = d[np.random.default_rng(seed).integers(0, n, size=(iters, n))].mean(axis=1)  # (iters,): one per resample
    below, above = float((means <= 0).mean()), float((means >= 0).mean())
    low, high = np.percentile(means, [2.5, 97.5])
    return {"diff": float(d.mean()), "low": float(low), "high": float(high), "p": min(1.0, 2 * min(below, above))}


def mcnemar(a: Sequence[int | float], b: Sequence[int | float]) -> dict[str, float]:
    """McNemar's exact test for 0/1 outcomes of two models on the same items (McNemar 1947).

    Items both get right or both get wrong say nothing about which is better; of the n items where they
    disagree, b_only favour b. Under "no difference" b_only ~ Binomial(n, ½); p is two-sided.
    """
    if len(a) != len(b):
        raise ValueError(f"paired outcomes need the same items: got {len(a)} and {len(b)}.")
    a_only = sum(1 for x, y in zip(a, b) if x and not y)
    b_only = sum(1 for x, y in zip(a, b) if y and not x)
    n, k = a_only + b_only, min(a_only, b_only)
    p = 1.0 if n == 0 else min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)
    return {"a_only": a_only, "b_only": b_only, "diff": (b_only - a_only) / len(a), "p": p}


def sign_flip(a: Sequence[float], b: Sequence[float], exact_up_to: int = 16, iters: int = 100_000,
              seed: int = 0) -> dict[str, float]:
    """The paired permutation (sign-flip) test of mean(b − a) = 0 on the same items (Fisher 1935).

    Under "no difference" each item's difference is as likely to have the other sign, so the observed
    |mean difference| is compared with the means of every way of flipping signs: all 2ⁿ of them for
    n ≤ `exact_up_to` (an exact p), else `iters` random flips (seeded). Unlike the bootstrap's percentile
    interval it is not too optimistic on a handful of items: with n items p can never fall below 2 / 2ⁿ.
    Returns {"diff", "p", "exact"}.
    """
    if len(a) != len(b) or len(a) < 2:
        raise ValueError(f"paired scores need the same items, at least two: got {len(a)} and {len(b)}.")
    d = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    n, observed = len(d), abs(float(d.mean()))
    if n <= exact_up_to:
        signs = 1 - 2 * ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1)  # (2ⁿ, n): every sign pattern, ±1
    else:
        signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(iters, n))
    means = np.abs((signs * d).mean(axis=1))
    p = float((means >= observed - 1e-12).mean())  # the observed pattern is among them: p ≥ 1 / 2ⁿ (exact)
    return {"diff": float(d.mean()), "p": min(1.0, p), "exact": n <= exact_up_to}


def welch(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Welch's t-test of mean(b) − mean(a) for two unpaired sets of runs (e.g. three seeds each).

    Returns {"diff", "se", "df", "low", "high" (95 % interval), "p"}; the t quantiles come from scipy.
    """
    from scipy.stats import t as student_t  # lesson 10's only scipy call: the t distribution's tails

    if len(a) < 2 or len(b) < 2:
        raise ValueError("Welch's test needs at least two runs per arm (one run has no spread).")
    va, vb = (sum((x - sum(s) / len(s)) ** 2 for x in s) / (len(s) - 1) / len(s) for s in (a, b))
    se = math.sqrt(va + vb)
    diff = sum(b) / len(b) - sum(a) / len(a)
    if se == 0:
        return {"diff": diff, "se": 0.0, "df": float("inf"), "low": diff, "high": diff, "p": 0.0 if diff else 1.0}
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    q = student_t.ppf(0.975, df)
    q = float(q)
    return {"diff": diff, "se": se, "df": df, "low": diff - q * se, "high": diff + q * se,
            "p": float(2 * student_t.sf(abs(diff) / se, df))}


def _mean_squares(rows: Sequence[Sequence[float]]) -> dict:
    """Two-way layout, one score per (seed, item): the item means and the seeds' and residual mean squares."""
    y = np.asarray(rows, dtype=float)
    s, n = y.shape
    grand, seed_means, item_means = y.mean(), y.mean(axis=1), y.mean(axis=0)
    ms_seed = n * ((seed_means - grand) ** 2).sum() / (s - 1)
    resid = y - seed_means[:, None] - item_means[None, :] + grand
    ms_err = (resid ** 2).sum() / ((s - 1) * (n - 1))
    return {"seeds": s, "n": n, "item_means": item_means, "ms_seed": ms_seed, "ms_err": ms_err}


def _seed_part(ms: dict) -> tuple[float, list[tuple[float, int]]]:
    """σ²_seed / S, estimated as (MS_seed − MS_err) / (S·n), cut at 0; with its Satterthwaite terms."""
    s, n = ms["seeds"], ms["n"]
    part = (ms["ms_seed"] - ms["ms_err"]) / (s * n)
    if part <= 0:
        return 0.0, []
    return part, [(ms["ms_seed"] / (s * n), s - 1), (-ms["ms_err"] / (s * n), (s - 1) * (n - 1))]


def _interval(centre: float, terms: list[tuple[float, int]]) -> dict:
    """se = √(Σ terms), Satterthwaite's degrees of freedom, and the t interval at 95 %."""
    from scipy.stats import t as student_t

    var = sum(v for v, _ in terms)
    se = math.sqrt(max(var, 0.0))
    if se == 0:
        return {"se": 0.0, "df": float("inf"), "ci95": [centre, centre], "p_zero": 0.0 if centre else 1.0}
    df = float(var ** 2 / sum(v ** 2 / d for v, d in terms))
    q = float(student_t.ppf(0.975, df))
    return {"se": se, "df": df, "ci95": [centre - q * se, centre + q * se],
            "p_zero": float(2 * student_t.sf(abs(centre) / se, df))}


def seeds_by_items(rows: Sequence[Sequence[float]]) -> dict:
    """The mean of S ≥ 2 seeds' scores on the same n items, with two sources of noise (crossed random effects).

    The items: another sample of items would give another mean; averaging each item over the seeds first
    keeps the shared items from counting S times (se_items = sd of the item means / √n). The seeds: a seed
    that trained a better or worse model moves every item at once, so that part cancels out of the items'
    spread and must be added back: σ²_seed / S = (MS_seed − MS_err) / (S·n), cut at 0 (MS_seed: n × the
    variance of the seed means; MS_err: the residual mean square). se² = se_items² + that. The 95 % interval
    uses Student's t with Satterthwaite's degrees of freedom: with three seeds the seeds' part rests on 2.
    Returns {"mean", "se", "se_items", "se_seeds", "df", "ci95", "seeds", "n"}.
    """
    ms = _mean_squares(rows)
    if ms["seeds"] < 2 or ms["n"] < 2:
        raise ValueError("seeds_by_items needs at least two seeds and two items (one seed: the items' se alone).")
    s, n, items = ms["seeds"], ms["n"], ms["item_means"]
    item_part = items.var(ddof=1) / n  # = MS_items / (S·n)
    seed_part, seed_terms = _seed_part(ms)
    out = _interval(float(items.mean()), [(item_part, n - 1)] + seed_terms)
    return {"mean": float(items.mean()), "se": out["se"], "se_items": math.sqrt(item_part),
            "se_seeds": math.sqrt(seed_part), "df": out["df"], "ci95": out["ci95"], "seeds": s, "n": n}


def seeds_by_items_difference(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]]) -> dict:
    """mean(b) − mean(a) for two arms, each S ≥ 2 seeds × the same n items; the seeds are not paired.

    The items are paired: the per-item difference of the seed means cancels what an item does to both arms,
    so its spread gives the items' part (sd / √n). Each arm's seeds add their own part, as in `seeds_by_items`.
    Returns {"diff", "se", "df", "low", "high" (95 %, t with Satterthwaite's df), "p"}.
    """
    ma, mb = _mean_squares(a), _mean_squares(b)
    if ma["n"] != mb["n"] or min(ma["seeds"], mb["seeds"], ma["n"]) < 2:
        raise ValueError("both arms need the same items, at least two, and at least two seeds each.")
    d = mb["item_means"] - ma["item_means"]
    n = len(d)
    terms = [(d.var(ddof=1) / n, n - 1)] + _seed_part(ma)[1] + _seed_part(mb)[1]
    diff = float(d.mean())
    out = _interval(diff, terms)
    return {"diff": diff, "se": out["se"], "df": out["df"], "low": out["ci95"][0], "high": out["ci95"][1],
            "p": out["p_zero"]}


def items_needed(sd: float, delta: float, power: float = 0.8, z_alpha: float = Z95) -> int:
    """Items a paired comparison needs to detect a mean difference `delta` at 95 % with the given power.

    n = ((z_{1−α/2} + z_power) · sd / delta)², where sd is the standard deviation of the per-item
    differences (paired) — for two unpaired proportions use √(p₁(1−p₁) + p₂(1−p₂)) per item of each arm.
    """
    if delta == 0:
        raise ValueError("a difference of zero cannot be detected with any number of items.")
    return math.ceil(((z_alpha + NormalDist().inv_cdf(power)) * sd / abs(delta)) ** 2)


def detectable_difference(sd: float, n: int, power: float = 0.8, z_alpha: float = Z95) -> float:
    """The smallest difference n items detect at 95 % with the given power: (z_{1−α/2} + z_power) · sd / √n."""
    return (z_alpha + NormalDist().inv_cdf(power)) * sd / math.sqrt(n)
