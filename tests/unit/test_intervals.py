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
