"""Intervals for rates: Wilson for proportions, a percentile bootstrap for judge outcomes."""

from __future__ import annotations

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
