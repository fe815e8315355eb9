"""A missing score never selects a record: every operator, negations and and/or included."""

import pytest

from sftflow import Example
from sftflow.select.rules import parse_rule


def _records():
    # ifd: 2.0 (measured), NaN-producing string, and absent; quality measured on all three
    recs = [Example.single(f"q{i}", "a") for i in range(3)]
    for ex, ifd in zip(recs, [2.0, "n/a", None]):
        ex.metadata["scores"] = {"quality": 0.9}
        if ifd is not None:
            ex.metadata["scores"]["ifd"] = ifd
    return recs


@pytest.mark.parametrize("rule,measured", [
    ("ifd > 1", True), ("ifd >= 1", True), ("ifd < 1", False), ("ifd <= 1", False),
    ("ifd == 2", True), ("ifd != 5", True),
    ("not ifd > 1", False), ("not ifd < 1", True), ("not ifd != 5", False), ("not ifd == 5", True),
    ("not not ifd > 1", True), ("1 < ifd < 3", True), ("not 1 < ifd < 3", False),
    ("pct(ifd) >= 50", True), ("not pct(ifd) < 50", True), ("-ifd < 0", True),
])
def test_every_operator_is_false_on_a_missing_value(rule, measured):
    got = parse_rule(rule).evaluate(_records()).tolist()
    assert got == [measured, False, False]


@pytest.mark.parametrize("rule,expected", [
    # Kleene logic: an unknown part decides nothing, a known part can still decide
    ("ifd > 1 or quality > 0.5", [True, True, True]),
    ("not ifd > 1 or quality > 0.5", [True, True, True]),
    ("ifd > 1 or quality < 0.5", [True, False, False]),
    ("not (ifd > 1 or quality < 0.5)", [False, False, False]),
    ("ifd > 1 and quality > 0.5", [True, False, False]),
    ("not (ifd < 1 and quality > 0.5)", [True, False, False]),
    ("not (ifd > 1 and quality < 0.5)", [True, True, True]),   # the known 'quality < 0.5' is false
])
def test_and_or_not_follow_three_valued_logic(rule, expected):
    assert parse_rule(rule).evaluate(_records()).tolist() == expected
