"""Mixing: exact counts, seeded, upsampling reported, _source kept."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from sftflow.cli import app as sftflow_app
from sftflow.curate.mix import create_balanced_sft_mix, exact_counts, parse_source_spec
from sftflow.io import load_examples, write_examples
from sftflow.schema import Example


def pool(tag, n):
    return [Example.single(f"{tag} prompt {i}", f"{tag} answer {i}") for i in range(n)]


def test_exact_counts_largest_remainder():
    assert exact_counts({"a": 0.5, "b": 0.3, "c": 0.2}, 10) == {"a": 5, "b": 3, "c": 2}
    assert exact_counts({"a": 1, "b": 1, "c": 1}, 10) == {"a": 4, "b": 3, "c": 3}
    assert sum(exact_counts({"a": 0.7, "b": 0.2, "c": 0.1}, 7).values()) == 7
    with pytest.raises(ValueError, match="sum to zero"):
        exact_counts({"a": 0}, 5)


def test_mix_counts_sources_and_seed():
    srcs = {"a": pool("a", 10), "b": pool("b", 10)}
    mixed, rep = create_balanced_sft_mix(srcs, {"a": 0.7, "b": 0.3}, 10, seed=3)
    assert [e.metadata["_source"] for e in mixed].count("a") == 7
    assert rep.per_source["b"] == {"available": 10, "taken": 3, "proportion": 0.3, "upsample_factor": 1.0}
    assert not rep.warnings
    again, _ = create_balanced_sft_mix(srcs, {"a": 0.7, "b": 0.3}, 10, seed=3)
    assert [e.id for e in again] == [e.id for e in mixed]
    other, _ = create_balanced_sft_mix(srcs, {"a": 0.7, "b": 0.3}, 10, seed=4)
    assert [e.id for e in other] != [e.id for e in mixed]


def test_mix_upsamples_with_warning():
    srcs = {"a": pool("a", 10), "small": pool("s", 2)}
    mixed, rep = create_balanced_sft_mix(srcs, {"a": 0.5, "small": 0.5}, 10, seed=0)
    assert rep.warnings == ["source 'small' has 2 records but its share is 5: upsampled x2.50 "
                            "(each record used 2-3 times)"]
    small = [e for e in mixed if e.metadata["_source"] == "small"]
    assert len(small) == 5 and sorted({e.metadata["mix_of"] for e in small}) == sorted(e.id for e in srcs["small"])
    assert sorted(e.metadata["mix_copy"] for e in small) == [0, 0, 1, 1, 2]


def test_parse_source_spec():
    assert parse_source_spec("data/a.jsonl:0.3") == ("data/a.jsonl", 0.3)
    assert parse_source_spec("data/a.jsonl") == ("data/a.jsonl", 1.0)


def test_mix_cli_writes_output_and_manifest(tmp_path):
    write_examples(tmp_path / "a.jsonl", pool("a", 6))
    write_examples(tmp_path / "b.jsonl", pool("b", 1))
    app = sftflow_app
    r = CliRunner().invoke(app, ["mix", f"{tmp_path / 'a.jsonl'}:3", f"{tmp_path / 'b.jsonl'}:1",
                                 "--total", "8", "-o", str(tmp_path / "mix.jsonl")])
    assert r.exit_code == 0, r.output
    assert "upsampled x2.00" in r.output
    out = load_examples(tmp_path / "mix.jsonl")
    assert len(out) == 8
    man = json.loads((tmp_path / "mix.manifest.json").read_text())
    assert man["counts"]["per_source"]["a"]["taken"] == 6 and man["stage"] == "mix"


def test_upsampled_copies_get_distinct_ids_and_share_a_group():
    pool = [Example.single(f"question {i}?", f"answer number {i}.") for i in range(3)]
    pool[2].metadata["group"] = "task-7"
    mixed, _ = create_balanced_sft_mix({"a": pool}, {"a": 1.0}, 8, seed=1)
    ids = [e.id for e in mixed]
    assert len(set(ids)) == len(ids), ids
    by_origin: dict = {}
    for e in mixed:
        by_origin.setdefault(e.metadata["mix_of"], []).append(e)
    assert sorted(by_origin) == sorted(p.id for p in pool)
    for orig, copies in by_origin.items():
        assert len(copies) >= 2
        want = "task-7" if orig == pool[2].id else orig
        assert {c.metadata["group"] for c in copies} == {want}
    assert sorted(e.metadata["mix_copy"] for e in by_origin[pool[0].id]) == list(range(len(by_origin[pool[0].id])))
    assert pool[0].id in ids and "group" not in pool[0].metadata   # the first copy keeps the id; input untouched


def test_mix_without_upsampling_leaves_ids_and_groups():
    pool = [Example.single(f"question {i}?", f"answer number {i}.") for i in range(5)]
    mixed, _ = create_balanced_sft_mix({"a": pool}, {"a": 1.0}, 3, seed=0)
    assert {e.id for e in mixed} <= {p.id for p in pool}
    assert all("group" not in e.metadata and "mix_of" not in e.metadata for e in mixed)
