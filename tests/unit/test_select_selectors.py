"""Selectors on hand-made score tables: exact ids in, exact ids out."""

from __future__ import annotations

import numpy as np
import pytest

from sftflow import Example
from sftflow.config import ConfigError, validate
from sftflow.select.config import SelectConfig, SelectionConfig
from sftflow.select.rules import RuleError, parse_rule, percentile_rank
from sftflow.select.selectors import allocate, resolve_budget, select

N = None
TABLE = {  # id: (ppl, option_prob_sum, quality, source)
    "a": (25, N, 0.8, "news"),
    "b": (10, 0.3, 0.9, "news"),
    "c": (30, 0.9, 0.5, "qa"),
    "d": (10, 0.9, 0.95, "qa"),
    "e": (N, 0.2, 0.75, "reviews"),     # ppl flagged (too long)
    "f": (21, N, N, "news"),            # quality never measured
    "g": (20, 0.5, 0.71, "qa"),         # on both boundaries
    "h": (50, 0.1, 0.7, "news"),        # quality exactly on the boundary
}


def table() -> list[Example]:
    out = []
    for id_, (ppl, ops, q, src) in TABLE.items():
        sc = {k: v for k, v in (("ppl", ppl), ("option_prob_sum", ops), ("quality", q)) if v is not None}
        if ppl is None:
            sc["flags"] = ["too_long"]
        out.append(Example(messages=[{"role": "user", "content": f"q {id_}"},
                                     {"role": "assistant", "content": f"a {id_}"}],
                           metadata={"scores": sc, "_source": src}, id=id_))
    return out


def ids(exs):
    return [e.id for e in exs]


def test_combined_rule_selects_exactly_the_expected_ids():
    cfg = SelectionConfig(method="rule", rule="(ppl > 20 or option_prob_sum < 0.5) and quality > 0.7")
    res = select(table(), cfg)
    assert sorted(ids(res.selected)) == ["a", "b", "e"]
    assert sorted(ids(res.not_selected)) == ["c", "d", "f", "g", "h"]
    why = {e.id: e.metadata["selection"] for e in res.not_selected}
    assert why["h"]["reason"].startswith("rule false") and "quality=0.7" in why["h"]["reason"]
    assert all(e.metadata["selection"]["selected"] for e in res.selected)
    assert res.summary["eligible_after_rule"] == 3


def test_percentile_threshold():
    res = select(table(), SelectionConfig(method="rule", rule="pct(ppl) >= 75"))
    assert sorted(ids(res.selected)) == ["c", "h"]


def test_percentile_rank_values():
    v = np.array([10, 20, np.nan, 10, 40.0])
    assert np.allclose(percentile_rank(v)[[0, 1, 3, 4]], [50, 75, 50, 100])
    assert np.isnan(percentile_rank(v)[2])


def test_topk_by_score_skips_records_without_the_score():
    res = select(table(), SelectionConfig(method="topk", order_by="ppl", budget=3))
    assert ids(res.selected) == ["h", "c", "a"]
    nots = {e.id: e.metadata["selection"]["reason"] for e in res.not_selected}
    assert nots["e"] == "no value for 'ppl' (flags: too_long)"
    assert nots["f"] == "below the top-3 cut"
    asc = select(table(), SelectionConfig(method="topk", order_by="ppl", budget=2, descending=False))
    assert ids(asc.selected) == ["b", "d"]      # tie at 10 keeps input order


def test_rule_then_topk_and_fraction_budget():
    cfg = SelectionConfig(method="topk", rule="quality > 0.7", order_by="ppl", budget=0.25)
    res = select(table(), cfg)
    assert resolve_budget(0.25, 8) == 2
    assert ids(res.selected) == ["a", "g"]      # quality>0.7: a(25) b(10) d(10) g(20); e has no ppl


def test_every_record_leaves_with_a_decision():
    exs = table()
    res = select(exs, SelectionConfig(method="topk", order_by="quality", budget=4))
    assert len(res.selected) + len(res.not_selected) == len(exs)
    assert {e.id for e in res.selected} | {e.id for e in res.not_selected} == set(TABLE)


def test_allocate_water_fills():
    assert allocate({"a": 10, "b": 2, "c": 5}, 9) == {"a": 4, "b": 2, "c": 3}
    assert allocate({"a": 10, "b": 2, "c": 5}, 100) == {"a": 10, "b": 2, "c": 5}
    assert allocate({"a": 10, "b": 2}, None, max_per_group=3) == {"a": 3, "b": 2}
    assert allocate({"a": 6, "b": 2}, 4, balanced=False) == {"a": 3, "b": 1}


def test_quota_per_source():
    cfg = SelectionConfig(method="topk", order_by="ppl", budget=4, quota={"by": "_source"})
    res = select(table(), cfg)
    # news has a, b, f, h; qa has c, d, g; reviews' only record (e) has no ppl -> two groups, 2 each
    assert sorted(ids(res.selected)) == ["a", "c", "g", "h"]
    assert res.summary["quota"]["news"] == {"available": 4, "budget": 2, "selected": 2}
    reasons = {e.id: e.metadata["selection"]["reason"] for e in res.not_selected}
    assert reasons["f"] == "group quota reached (news: 2)"


def test_diverse_skips_near_duplicates_of_kept_records():
    exs = table()[:4]
    for e, s in zip(exs, [4.0, 3.0, 2.0, 1.0]):
        e.metadata["scores"]["ifd"] = s
    emb = np.array([[1, 0], [0.99, 0.141], [0, 1], [0.7071, 0.7071]], dtype=np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    res = select(exs, SelectionConfig(method="diverse", order_by="ifd", budget=3, min_distance=0.1),
                 embeddings=emb)
    assert ids(res.selected) == ["a", "c", "d"]
    assert res.not_selected[0].metadata["selection"]["reason"].startswith("too similar to kept record a")


def test_kcenter_covers_both_clusters():
    exs = table()[:4]
    emb = np.array([[1, 0], [0.999, 0.04], [0, 1], [0.04, 0.999]], dtype=np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    res = select(exs, SelectionConfig(method="kcenter", budget=2, seed=0), embeddings=emb)
    picked = set(ids(res.selected))
    assert len(picked & {"a", "b"}) == 1 and len(picked & {"c", "d"}) == 1
    with pytest.raises(ValueError, match="needs embeddings"):
        select(table(), SelectionConfig(method="kcenter", budget=2))


@pytest.mark.parametrize("bad", ["import os", "ppl", "__import__('os').system('x') > 1",
                                 "ppl > 'a'", "ppl.real > 1", "pct(ppl, 3) > 1", "ppl in [1]"])
def test_rules_allow_only_comparisons(bad):
    with pytest.raises(RuleError):
        parse_rule(bad)


def test_config_rejects_bad_rule_and_unknown_keys():
    with pytest.raises(ConfigError, match="not allowed"):
        validate(SelectConfig, {"selection": {"method": "rule", "rule": "ppl + 1 > 2"}})
    with pytest.raises(ConfigError, match="did you mean 'order_by'"):
        validate(SelectConfig, {"selection": {"method": "topk", "orderby": "ppl"}})
    with pytest.raises(ConfigError, match="needs order_by"):
        validate(SelectConfig, {"selection": {"method": "topk"}})


def test_misspelt_or_missing_scores_are_refused():
    with pytest.raises(ValueError, match="unknown score 'qualty'"):
        select(table(), SelectionConfig(method="rule", rule="qualty > 0.5"))
    with pytest.raises(ValueError, match="no record has the score 'ifd'"):
        select(table(), SelectionConfig(method="topk", order_by="ifd", budget=2))
    # A known score absent from this data (no multiple-choice records) is simply false.
    res = select(table(), SelectionConfig(method="rule", rule="answer_prob < 0.5 or ppl > 40"))
    assert ids(res.selected) == ["h"]
