"""The statistics of select-vs-random: per-run means, run-level and prompt-level (paired)
differences, verdicts, and the audit of known-bad records a selection let in.

Two kinds of interval, because they answer different questions:

* **Across runs** (Welch, ``diff_ci``): the mean of an arm's runs minus the mean of the
  random runs; its width is training (and subset) noise. It needs >= 2 runs per arm.
* **Across prompts** (paired, ``paired_diff``): every run answers the same test prompts,
  so for each prompt ``d_i = mean over the arm's runs of its outcome - mean over the random
  runs``; the interval is Student's t over the ``d_i``. Pairing removes the prompt-to-prompt
  spread (some prompts are hard for every arm), so it is much tighter, but it holds the
  arm's own training runs fixed: with one selected run it says "this trained model beats
  the random ones on these prompts", not "any training seed would".

Audit (``audit_selection``): with a metadata key marking records known to be bad (planted),
each arm's count of them with a Wilson interval on its share, and the hypergeometric law of
that count for a random subset of the same size: its 95% range and the probability that a
random subset lets in as few.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

LOWER_IS_BETTER = ("heldout_loss", "probe:", "opening:")    # openings are unwanted ones


def lower_is_better(metric: str) -> bool:
    """Losses, probe rates (shares of answers that trip a probe) and the probabilities of unwanted
    openings are better low; correctness and multiple-choice accuracy are better high."""
    return metric.startswith(LOWER_IS_BETTER)


def mean_ci(values: list[float], confidence: float = 0.95) -> dict[str, Any]:
    """Mean with scipy's Student-t interval (n is small: 3-5 runs); constant runs: the point."""
    from scipy import stats
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    n = len(v)
    if n == 0:
        return {"n": 0, "mean": None, "low": None, "high": None, "sd": None}
    m = float(v.mean())
    if n == 1:
        return {"n": 1, "mean": m, "low": None, "high": None, "sd": None}
    sd = float(v.std(ddof=1))
    if sd == 0:
        return {"n": n, "mean": m, "low": m, "high": m, "sd": 0.0}
    ci = stats.ttest_1samp(v, 0.0).confidence_interval(confidence_level=confidence)
    return {"n": n, "mean": m, "low": float(ci.low), "high": float(ci.high), "sd": sd}


def diff_ci(a: list[float], b: list[float], confidence: float = 0.95) -> dict[str, Any]:
    """mean(a) - mean(b) with scipy's Welch (unequal variances) t interval; unmeasured runs dropped."""
    from ..intervals import welch_interval
    return welch_interval([x for x in a if x is not None and math.isfinite(x)],
                          [x for x in b if x is not None and math.isfinite(x)], confidence)


def paired_diff(arm_runs: list[list], random_runs: list[list], confidence: float = 0.95) -> dict[str, Any]:
    """Prompt-paired difference: each argument is one outcome list per run, aligned by prompt.

    A prompt counts when every run measured it (None = not measured, e.g. no reference
    figure). Returns the mean of ``d_i`` with its t interval over prompts.
    """
    from scipy import stats
    if not arm_runs or not random_runs:
        return {"n": 0, "diff": None, "low": None, "high": None}
    rows = list(zip(*arm_runs, *random_runs))
    k = len(arm_runs)
    d = np.asarray([np.mean(r[:k], dtype=float) - np.mean(r[k:], dtype=float)
                    for r in rows if all(x is not None for x in r)], dtype=float)
    n = len(d)
    if n < 2:
        return {"n": n, "diff": float(d.mean()) if n else None, "low": None, "high": None}
    m = float(d.mean())
    if float(d.std(ddof=1)) == 0:
        return {"n": n, "diff": m, "low": m, "high": m}
    ci = stats.ttest_1samp(d, 0.0).confidence_interval(confidence_level=confidence)
    return {"n": n, "diff": m, "low": float(ci.low), "high": float(ci.high)}


def verdict(diff: dict[str, Any], lower_is_better: bool = True) -> str:
    lo, hi = diff.get("low"), diff.get("high")
    if lo is None or hi is None:
        return "undecided (too few runs for an interval)"
    better = hi < 0 if lower_is_better else lo > 0
    worse = lo > 0 if lower_is_better else hi < 0
    if better:
        return "selection beats random"
    if worse:
        return "selection is worse than random"
    return "no better than random (the interval of the difference contains 0)"


def audit_selection(pool_marks: dict[str, str | None], chosen: dict[str, list[str]],
                    confidence: float = 0.95) -> dict[str, Any]:
    """Known-bad records (``pool_marks``: id -> kind or None) in each arm's chosen ids."""
    from scipy.stats import hypergeom

    from ..intervals import wilson
    n_pool, n_bad = len(pool_marks), sum(v is not None for v in pool_marks.values())
    out: dict[str, Any] = {"pool": n_pool, "bad_in_pool": n_bad, "pool_share": n_bad / n_pool if n_pool else None,
                           "arms": {}}
    for arm, ids in chosen.items():
        kinds = [pool_marks.get(i) for i in ids]
        bad, n = sum(k is not None for k in kinds), len(ids)
        low, high = wilson(bad, n, confidence)
        law = hypergeom(n_pool, n_bad, n)        # a random subset of n from the pool
        tail = (1 - confidence) / 2
        out["arms"][arm] = {
            "n": n, "bad": bad, "share": bad / n if n else None, "low": low, "high": high,
            "by_kind": {k: kinds.count(k) for k in sorted({k for k in pool_marks.values() if k})},
            "random_expected": n * n_bad / n_pool if n_pool else None,
            "random_range": [int(law.ppf(tail)), int(law.ppf(1 - tail))],
            "p_random_as_few": float(law.cdf(bad)),
        }
    return out


def _f(x) -> str:
    """Four decimals; below 0.001 three significant digits, so a small probability is not shown as 0."""
    if x is None:
        return "n/a"
    return f"{x:.3g}" if x != 0 and abs(x) < 1e-3 else f"{x:.4f}"


def arms_table(metrics: list[str], arms: dict[str, dict], diffs: dict[str, dict], paired: dict[str, dict],
               conf: float) -> str:
    """One row per metric and selection arm: both means, the run-level and the paired difference."""
    pct = f"{conf:.0%}"
    header = (f"| metric | arm | arm mean [{pct} CI] | random mean [{pct} CI] | arm - random, runs (Welch) "
              "| arm - random, paired over prompts |")
    lines = [header, "|---|---|---|---|---|---|"]
    for m in metrics:
        r = arms["random"][m]
        for arm in diffs:
            s, d, p = arms[arm][m], diffs[arm][m], paired[arm].get(m)
            pair = "n/a" if p is None else f"{_f(p['diff'])} [{_f(p['low'])}, {_f(p['high'])}] (n={p['n']})"
            lines.append(f"| {m} | {arm} | {_f(s['mean'])} [{_f(s['low'])}, {_f(s['high'])}] (n={s['n']}) | "
                         f"{_f(r['mean'])} [{_f(r['low'])}, {_f(r['high'])}] (n={r['n']}) | "
                         f"{_f(d['diff'])} [{_f(d['low'])}, {_f(d['high'])}] | {pair} |")
    return "\n".join(lines)


def audit_table(audit: dict[str, Any]) -> str:
    kinds = sorted({k for a in audit["arms"].values() for k in a["by_kind"]})
    intro = f"Known-bad records in the pool: {audit['bad_in_pool']} of {audit['pool']} ({audit['pool_share']:.1%})."
    header = ("| arm | size | bad let in | share [95% CI] | random subset: expected [95% range] | "
              "P(random <= this) | " + " | ".join(kinds) + " |")
    lines = [intro, "", header,
             "|---|---|---|---|---|---|" + "---|" * len(kinds)]
    for arm, a in audit["arms"].items():
        lines.append(f"| {arm} | {a['n']} | {a['bad']} | {a['share']:.1%} [{a['low']:.1%}, {a['high']:.1%}] | "
                     f"{a['random_expected']:.1f} [{a['random_range'][0]}, {a['random_range'][1]}] | "
                     f"{a['p_random_as_few']:.2g} | " + " | ".join(str(a["by_kind"][k]) for k in kinds) + " |")
    return "\n".join(lines)


def plot_arms(metrics: list[str], runs: list[dict], arms: dict[str, dict], path) -> Any:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(arms)
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.4), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        for x, arm in enumerate(names):
            ys = [r[m] for r in runs if r["arm"] == arm and r.get(m) is not None]
            ax.scatter([x] * len(ys), ys, alpha=0.6, s=18)
            s = arms[arm][m]
            if s["mean"] is not None:
                err = None if s["low"] is None else [[s["mean"] - s["low"]], [s["high"] - s["mean"]]]
                ax.errorbar([x + 0.15], [s["mean"]], yerr=err, fmt="o", color="black", capsize=4)
        ax.set_xticks(list(range(len(names))), names)
        ax.set_title(m, fontsize=9)
    fig.suptitle("select vs random: runs, mean and 95% CI", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
