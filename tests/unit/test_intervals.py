"""The shared intervals against hand computation and scipy on fixed data."""

import math

import pytest

from sftflow.intervals import mcnemar_exact


def _pairs(both, before_only, after_only, neither):
    before = [True] * both + [True] * before_only + [False] * after_only + [False] * neither
    after = [True] * both + [False] * before_only + [True] * after_only + [False] * neither
    return before, after


def _wilson(count, n, z=1.959963984540054):
    # The closed form, written out so the test does not reuse the code it checks.
    p = count / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def test_mcnemar_exact_p_value_is_the_binomial_on_discordant_pairs():
    # 1 item lost, 9 gained: p = 2 * P(X <= 1 | Bin(10, 1/2)) = 2 * 11 / 1024.
    out = mcnemar_exact(*_pairs(20, 1, 9, 10))
    assert out["n"] == 40 and out["before_only"] == 1 and out["after_only"] == 9
    assert out["p_value"] == pytest.approx(22 / 1024, rel=1e-12)
    assert out["diff"] == pytest.approx(8 / 40)
    # Symmetric: swapping before and after flips the difference, not the p-value.
    flipped = mcnemar_exact(*_pairs(20, 9, 1, 10))
    assert flipped["p_value"] == pytest.approx(out["p_value"])
    assert flipped["diff"] == pytest.approx(-out["diff"])


def test_mcnemar_interval_is_newcombes_hybrid_score_by_hand():
    a, b, c, d = 20, 1, 9, 10
    n = a + b + c + d
    p_after, p_before = (a + c) / n, (a + b) / n
    la, ua = _wilson(a + c, n)
    lb, ub = _wilson(a + b, n)
    phi = (a * d - b * c) / math.sqrt((a + b) * (c + d) * (a + c) * (b + d))
    diff = p_after - p_before
    low = diff - math.sqrt((p_after - la) ** 2 - 2 * phi * (p_after - la) * (ub - p_before) + (ub - p_before) ** 2)
    high = diff + math.sqrt((ua - p_after) ** 2 - 2 * phi * (ua - p_after) * (p_before - lb) + (p_before - lb) ** 2)
    out = mcnemar_exact(*_pairs(a, b, c, d))
    assert out["diff_low"] == pytest.approx(low, abs=1e-9)
    assert out["diff_high"] == pytest.approx(high, abs=1e-9)
    assert out["diff_low"] > 0  # 9 gains against 1 loss in 40 items is a real improvement


def test_mcnemar_without_change_is_inconclusive_not_certain():
    out = mcnemar_exact(*_pairs(5, 0, 0, 15))
    assert out["p_value"] == 1.0 and out["diff"] == 0.0
    assert out["diff_low"] < 0 < out["diff_high"]  # not the Wald [0, 0]
    every = mcnemar_exact([True] * 12, [True] * 12)
    assert every["diff_low"] < 0 < every["diff_high"] and every["diff_high"] <= 1


def test_mcnemar_refuses_unpaired_outcomes_and_handles_empty():
    with pytest.raises(ValueError, match="3 'before' outcomes but 2"):
        mcnemar_exact([True, False, True], [True, False])
    empty = mcnemar_exact([], [])
    assert empty["n"] == 0 and math.isnan(empty["p_value"]) and math.isnan(empty["diff_low"])


def test_bootstrap_rates_are_scipys_bca_and_all_ties_stay_the_point():
    import numpy as np
    from scipy.stats import bootstrap
    from sftflow.intervals import bootstrap_rates
    outcomes = ["win"] * 3 + ["tie"] * 14 + ["loss"] * 7
    got = bootstrap_rates(outcomes, ("win", "tie", "loss"), samples=500, seed=3)
    wins = np.array([o == "win" for o in outcomes], dtype=float)
    ref = bootstrap((wins,), np.mean, n_resamples=500, method="BCa", rng=np.random.default_rng(3))
    assert got["win"] == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high))
    ties = bootstrap_rates(["tie"] * 9, ("win", "tie", "loss"))
    assert ties == {"win": (0.0, 0.0), "tie": (1.0, 1.0), "loss": (0.0, 0.0)}
    one = bootstrap_rates(["win"], ("win", "tie", "loss"))
    assert all(math.isnan(lo) and math.isnan(hi) for lo, hi in one.values())   # no interval from 1 item


def test_bootstrap_mean_is_scipys_bca():
    import numpy as np
    from scipy.stats import bootstrap
    from sftflow.intervals import bootstrap_mean
    grades = [7, 8, 8, 9, 3, 10, 8, 7, 2, 9, 9, 8]
    ref = bootstrap((np.array(grades, float),), np.mean, n_resamples=800, method="BCa",
                    rng=np.random.default_rng(0)).confidence_interval
    assert bootstrap_mean(grades, samples=800) == pytest.approx((ref.low, ref.high))
    assert bootstrap_mean([5.0] * 6) == (5.0, 5.0)


def test_paired_ratio_delta_is_scipys_paired_bca_and_narrower_than_unpaired():
    import numpy as np
    from scipy.stats import bootstrap
    from sftflow.intervals import paired_ratio_delta
    rng = np.random.default_rng(1)
    tokens = rng.integers(5, 60, size=40).astype(float)
    difficulty = rng.gamma(2.0, 1.0, size=40)                    # per-token loss varies a lot by item
    base = difficulty * tokens
    tuned = (difficulty - 0.1 + rng.normal(0, 0.05, 40)) * tokens
    got = paired_ratio_delta(base, tuned, tokens, samples=600, seed=2)

    def stat(b, t, n, axis=-1):
        return (t.sum(axis=axis) - b.sum(axis=axis)) / n.sum(axis=axis)
    ref = bootstrap((base, tuned, tokens), stat, paired=True, vectorized=True, n_resamples=600,
                    method="BCa", rng=np.random.default_rng(2)).confidence_interval
    assert got == pytest.approx((ref.low, ref.high))
    assert got[1] < 0 and got[1] - got[0] < 0.1                  # pairing removes item difficulty
    assert paired_ratio_delta(base, base, tokens) == (0.0, 0.0)  # identical models: the point


def test_welch_interval_is_scipys():
    from scipy.stats import ttest_ind
    from sftflow.intervals import welch_interval
    a, b = [1.0, 1.1, 0.9, 1.3], [2.0, 2.5, 1.8]
    ref = ttest_ind(a, b, equal_var=False)
    ci = ref.confidence_interval(confidence_level=0.9)
    got = welch_interval(a, b, 0.9)
    assert (got["low"], got["high"], got["df"]) == pytest.approx((ci.low, ci.high, ref.df))
    assert welch_interval([2.0, 2.0], [1.0, 1.0]) == {"diff": 1.0, "low": 1.0, "high": 1.0, "df": None}
    assert welch_interval([2.0], [1.0, 3.0])["low"] is None
