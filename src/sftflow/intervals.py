"""Intervals for rates: Wilson for proportions, a BCa bootstrap (scipy) for judge outcomes and
paired loss differences, an exact paired test (McNemar) for a before/after difference of rates
on the same items, and the Welch interval for a difference of means."""

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


def _bootstrap(data: tuple[np.ndarray, ...], statistic, *, paired: bool, samples: int, seed: int,
               confidence: float) -> tuple[float, float]:
    """scipy.stats.bootstrap with BCa, resampling items (rows of every array together when paired).

    BCa rather than percentile on purpose: our statistics are shares and ratios of a few
    dozen to a few hundred items, skewed near 0 and 1, where the percentile interval is
    biased and BCa's bias and skew corrections are what make 95% mean 95%.
    Cases BCa cannot handle are answered directly: fewer than 2 items (no interval: NaN);
    a statistic that does not move under resampling (all ties, or a model pair with
    identical losses), where BCa's correction is 0/0 and every bootstrap method agrees the
    interval is the point itself; and a BCa correction that comes out infinite while the
    draws do vary, where the percentile interval of the same draws is reported.
    """
    import warnings
    from scipy.stats import bootstrap
    if len(data[0]) < 2:
        return (float("nan"), float("nan"))
    point = float(statistic(*data, axis=-1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")           # DegenerateDataWarning: handled just below
        res = bootstrap(data, statistic, paired=paired, vectorized=True, n_resamples=samples,
                        confidence_level=confidence, method="BCa", rng=np.random.default_rng(seed))
    dist = res.bootstrap_distribution
    if np.ptp(dist) <= 1e-12 * max(1.0, abs(point)):   # constant up to float rounding
        return (point, point)
    low, high = res.confidence_interval
    if not (np.isfinite(low) and np.isfinite(high)):   # BCa undefined (e.g. no draw below the point)
        alpha = (1 - confidence) / 2
        low, high = np.quantile(dist, alpha), np.quantile(dist, 1 - alpha)
    return (float(low), float(high))


def _mean(x, axis=-1):
    return np.mean(x, axis=axis)


def bootstrap_rates(outcomes: list[str], labels: tuple[str, ...], *, samples: int = 1000,
                    seed: int = 0, confidence: float = 0.95) -> dict[str, tuple[float, float]]:
    """BCa bootstrap over items for the share of each label (see ``_bootstrap``).

    All ties gives tie = (1, 1) and win = loss = (0, 0): with no variation among the
    items, resampling them cannot say more.
    """
    if not outcomes:
        return {lab: (float("nan"), float("nan")) for lab in labels}
    codes = np.array([labels.index(o) for o in outcomes])
    return {lab: _bootstrap(((codes == i).astype(float),), _mean, paired=False, samples=samples,
                            seed=seed, confidence=confidence)
            for i, lab in enumerate(labels)}


def bootstrap_mean(values: list[float], *, samples: int = 1000, seed: int = 0,
                   confidence: float = 0.95) -> tuple[float, float]:
    """BCa bootstrap interval of a mean (judge grades); NaN for an empty list."""
    if not values:
        return (float("nan"), float("nan"))
    return _bootstrap((np.asarray(values, dtype=float),), _mean, paired=False, samples=samples, seed=seed,
                      confidence=confidence)


def _ratio_delta(base_sums, tuned_sums, tokens, axis=-1):
    # token-weighted loss of the resampled items, tuned - base (both over the same tokens)
    return (tuned_sums.sum(axis=axis) - base_sums.sum(axis=axis)) / tokens.sum(axis=axis)


def paired_ratio_delta(base_sums: Sequence[float], tuned_sums: Sequence[float], tokens: Sequence[float], *,
                       samples: int = 1000, seed: int = 0, confidence: float = 0.95) -> tuple[float, float]:
    """BCa interval of sum(tuned) / sum(tokens) - sum(base) / sum(tokens), resampling items.

    Paired: an item's two loss sums and its token count are resampled together, so the
    interval reflects the difference between the models, not the spread of item difficulty.
    """
    if not len(base_sums):
        return (float("nan"), float("nan"))
    data = tuple(np.asarray(x, dtype=float) for x in (base_sums, tuned_sums, tokens))
    return _bootstrap(data, _ratio_delta, paired=True, samples=samples, seed=seed, confidence=confidence)


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


def welch_interval(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> dict:
    """mean(a) - mean(b) with scipy's Welch (unequal variances) t interval.

    When both samples are constant the standard error is 0 and scipy's interval is NaN;
    the difference is then known exactly and the interval is the point (``df`` None).
    Fewer than 2 values on a side: the difference (if any) with no interval.
    """
    from scipy.stats import ttest_ind
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        d = float(a.mean() - b.mean()) if len(a) and len(b) else None
        return {"diff": d, "low": None, "high": None}
    d = float(a.mean() - b.mean())
    if a.var() == 0 and b.var() == 0:
        return {"diff": d, "low": d, "high": d, "df": None}
    res = ttest_ind(a, b, equal_var=False)
    ci = res.confidence_interval(confidence_level=confidence)
    return {"diff": d, "low": float(ci.low), "high": float(ci.high), "df": float(res.df)}
