"""Intervals for rates: Wilson for proportions, a percentile bootstrap for judge outcomes,
and an exact paired test (McNemar) for a before/after difference on the same items."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def wilson(count: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval (scipy's), which stays inside [0, 1] and is sane at 0/n and n/n,
    unlike the normal approximation that gives [0, 0] for a probe that never fired."""
    if n == 0:
        return (float("nan"), float("nan"))
    from scipy.stats import binomtest
    ci = binomtest(int(count), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return (float(ci.low), float(ci.high))


def rate(count: int, n: int) -> dict:
    low, high = wilson(count, n)
    return {"rate": count / n if n else float("nan"), "low": low, "high": high, "n": n, "count": count}


def bootstrap_rates(outcomes: list[str], labels: tuple[str, ...], *, samples: int = 1000,
                    seed: int = 0, confidence: float = 0.95) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap over items for the share of each label.

    Written with numpy rather than scipy.stats.bootstrap because judge outcomes are
    often degenerate (all ties), where scipy's default BCa method returns NaN; the
    percentile interval of a constant is that constant, which is the honest answer.
    """
    if not outcomes:
        return {lab: (float("nan"), float("nan")) for lab in labels}
    rng = np.random.default_rng(seed)
    codes = np.array([labels.index(o) for o in outcomes])
    idx = rng.integers(0, len(codes), size=(samples, len(codes)))
    draws = codes[idx]
    alpha = (1 - confidence) / 2
    out = {}
    for i, lab in enumerate(labels):
        shares = (draws == i).mean(axis=1)
        out[lab] = (float(np.quantile(shares, alpha)), float(np.quantile(shares, 1 - alpha)))
    return out


def bootstrap_mean(values: list[float], *, samples: int = 1000, seed: int = 0,
                   confidence: float = 0.95) -> tuple[float, float]:
    if not values:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    arr = np.asarray(values, dtype=float)
    means = arr[rng.integers(0, len(arr), size=(samples, len(arr)))].mean(axis=1)
    alpha = (1 - confidence) / 2
    return (float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha)))


def mcnemar_exact(before: Sequence[bool], after: Sequence[bool], confidence: float = 0.95) -> dict:
    """Paired comparison of two rates measured on the same items (base vs tuned on one probe set).

    The test is McNemar's exact form: under "no change" each discordant item is equally likely
    to have moved either way, so after_only ~ Binomial(before_only + after_only, 1/2) and the
    two-sided p-value is scipy's exact binomial test. Concordant items carry no evidence.

    The interval is on ``diff = rate(after) - rate(before)`` and is Newcombe's hybrid score
    interval (Newcombe 1998, method 10, no continuity correction): the Wilson intervals of the
    two marginal rates combined with the sample correlation of the pairs. It is one of the
    intervals Fagerland, Lydersen and Laake (2014) recommend for paired proportions, stays in
    [-1, 1], and unlike the Wald interval is not [0, 0] when no item changed. Written by hand
    because neither scipy nor scikit-learn ships a paired-difference interval.
    """
    if len(before) != len(after):
        raise ValueError(f"mcnemar_exact: {len(before)} 'before' outcomes but {len(after)} 'after'")
    pairs = [(bool(x), bool(y)) for x, y in zip(before, after)]
    n = len(pairs)
    both = sum(1 for x, y in pairs if x and y)
    before_only = sum(1 for x, y in pairs if x and not y)
    after_only = sum(1 for x, y in pairs if y and not x)
    neither = n - both - before_only - after_only
    out = {"n": n, "both": both, "neither": neither, "before_only": before_only,
           "after_only": after_only, "confidence": confidence,
           "method": "exact McNemar (binomial on discordant pairs); Newcombe hybrid score interval"}
    if n == 0:
        nan = float("nan")
        return {**out, "p_value": nan, "diff": nan, "diff_low": nan, "diff_high": nan}
    from scipy.stats import binomtest
    discordant = before_only + after_only
    p_value = binomtest(after_only, discordant, 0.5).pvalue if discordant else 1.0
    p_after, p_before = (both + after_only) / n, (both + before_only) / n
    low_a, high_a = wilson(both + after_only, n, confidence)
    low_b, high_b = wilson(both + before_only, n, confidence)
    margins = (both + before_only) * (after_only + neither) * (both + after_only) * (before_only + neither)
    # phi, the correlation of the paired outcomes; 0 when a margin is empty (no variation to correlate).
    phi = (both * neither - before_only * after_only) / math.sqrt(margins) if margins else 0.0
    diff = p_after - p_before
    down = math.sqrt(max(0.0, (p_after - low_a) ** 2 - 2 * phi * (p_after - low_a) * (high_b - p_before)
                         + (high_b - p_before) ** 2))
    up = math.sqrt(max(0.0, (high_a - p_after) ** 2 - 2 * phi * (high_a - p_after) * (p_before - low_b)
                       + (p_before - low_b) ** 2))
    return {**out, "p_value": float(p_value), "diff": diff,
            "diff_low": max(-1.0, diff - down), "diff_high": min(1.0, diff + up)}
