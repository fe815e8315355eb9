"""The planted pool: deterministic, 30% bad in four kinds, each kind what it says; labels match
the pool; and selection cannot read the planted mark."""

from __future__ import annotations

import importlib.util
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from sftflow import Example
from sftflow.io import read_examples, write_examples

DEMO = Path(__file__).resolve().parents[2] / "src" / "sftflow" / "data" / "demo"


def _builder():
    spec = importlib.util.spec_from_file_location("build_planted_pool", DEMO / "build_planted_pool.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _source() -> list[dict]:
    return [json.loads(line) for line in (DEMO / "train.jsonl").read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def built():
    return _builder().build(_source(), seed=0)


def test_shipped_files_are_what_the_builder_writes(tmp_path, built):
    b = _builder()
    pool, labels = built
    assert (pool, labels) == b.build(_source(), seed=0)                   # deterministic
    b.write_jsonl(tmp_path / "p.jsonl", pool)
    b.write_jsonl(tmp_path / "l.jsonl", labels)
    assert (tmp_path / "p.jsonl").read_bytes() == (DEMO / "planted_pool.jsonl").read_bytes()
    assert (tmp_path / "l.jsonl").read_bytes() == (DEMO / "planted_labels.jsonl").read_bytes()
    assert (DEMO / "planted_pool.jsonl").stat().st_size < 1_000_000
    assert b.build(_source(), seed=1)[0] != pool                          # the seed matters


def test_thirty_percent_planted_in_four_kinds_and_only_the_last_answer_changed(built):
    pool, _ = built
    kinds = Counter(r.get("metadata", {}).get("planted") for r in pool)
    assert kinds == {None: 476, "wrong_figure": 51, "apology": 51, "off_format": 51, "truncated": 51}
    for src, rec in zip(_source(), pool):
        assert rec["messages"][:-1] == src["messages"][:-1]
        assert (rec["messages"][-1] != src["messages"][-1]) == ("metadata" in rec)


def test_each_kind_is_the_defect_it_names(built):
    from sftflow.evaluate.reference import answer_line, context_text, states_figure, target_figure
    from sftflow.probes import DEFAULT_PROBES, Probe, ProbeSpec
    apology = Probe(ProbeSpec(**DEFAULT_PROBES[0]))
    pool, _ = built
    for src, rec in zip(_source(), pool):
        kind = rec.get("metadata", {}).get("planted")
        old, new = src["messages"][-1]["content"], rec["messages"][-1]["content"]
        if kind == "wrong_figure":
            ex = Example.from_dict(src)
            target = target_figure(context_text(ex), old)
            assert target is not None and not states_figure(answer_line(new), target)
            assert new.split("\n", 1)[1] == old.split("\n", 1)[1]          # the details still compute it
        elif kind == "apology":
            assert apology({"text": new}) and new.endswith(old)
        elif kind == "off_format":
            assert not re.search(r"^Answer:|\n\nDetails:", new)
        elif kind == "truncated":
            assert old.startswith(new) and len(new.split()) <= 0.65 * len(old.split()) + 1 and new[-1] not in ".!?"
        else:
            assert apology({"text": new}) is False


def test_labels_are_thirty_percent_of_the_pool_keyed_by_content_id(built):
    pool, labels = built
    examples = [Example.from_dict(r) for r in pool]
    planted = {ex.id: "planted" in ex.metadata for ex in examples}
    assert len(labels) == 204 and len({x["id"] for x in labels}) == 204
    assert all(x["label"] == int(not planted[x["id"]]) for x in labels)


def _select_ids(pool: list[Example], tmp: Path) -> list[str]:
    from sftflow.select.config import SelectConfig
    from sftflow.select.pipeline import score_and_select
    tmp.mkdir(parents=True)
    write_examples(tmp / "pool.jsonl", pool)
    cfg = SelectConfig.model_validate({
        "score": {"scores": ["embedding"], "embedding_method": "tfidf", "use_cache": False},
        "quality": {"labels": str(DEMO / "planted_labels.jsonl"), "c": 10},
        "selection": {"method": "topk", "order_by": "quality", "rule": "quality > 0.3", "budget": 120}})
    _, res = score_and_select([tmp / "pool.jsonl"], tmp / "out", cfg, progress=False)
    return [ex.id for ex in res.selected]


def test_selection_is_the_same_without_the_planted_mark(tmp_path):
    pool = read_examples([DEMO / "planted_pool.jsonl"]).examples
    stripped = [Example(messages=ex.messages, metadata={k: v for k, v in ex.metadata.items() if k != "planted"})
                for ex in pool]
    assert [ex.id for ex in stripped] == [ex.id for ex in pool]
    assert any("planted" in ex.metadata for ex in pool) and not any("planted" in ex.metadata for ex in stripped)
    chosen = _select_ids(pool, tmp_path / "marked")
    assert len(chosen) == 120
    assert chosen == _select_ids(stripped, tmp_path / "stripped")


def test_a_quality_model_whose_calibration_would_reverse_its_ranking_is_refused():
    """Platt's sigmoid fitted on out-of-fold scores that rank bad above good comes out with the
    wrong sign and would rank every record backwards; the model says so instead of shipping."""
    import numpy as np

    from sftflow.embed import embed_texts
    from sftflow.select.quality import train_quality
    from sftflow.select.scorers import embedding_text
    b = _builder()
    b.LABELLED_SHARE = 0.1                 # 68 labels of this pool: the out-of-fold ranking reverses
    try:
        pool, labels = b.build(_source(), seed=0)
    finally:
        b.LABELLED_SHARE = 0.3
    examples = [Example.from_dict(r) for r in pool]
    lab = {x["id"]: x["label"] for x in labels}
    rows = [i for i, ex in enumerate(examples) if ex.id in lab]
    emb = embed_texts([embedding_text(ex) for ex in examples], None, method="tfidf")[rows]
    with pytest.raises(ValueError, match="reverse"):
        train_quality(emb, np.array([lab[examples[i].id] for i in rows]), c=10)
