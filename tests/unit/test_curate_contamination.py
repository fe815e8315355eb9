"""Leakage between training and evaluation records: n-gram overlap and MinHash near duplicates."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from sftflow.cli import app as sftflow_app
from sftflow.curate.config import LeakageParams
from sftflow.curate.contamination import LeakageStep, find_leaks
from _shingle_sets import ShingleSets
from sftflow.curate.minhash import shingle_hashes
from sftflow.io import write_examples
from sftflow.schema import Example

LONG_EVAL = ("In the year 1887 the small coastal town of Brixham opened its first public library with "
             "three hundred donated books and a single reading room")
EVAL_Q = "What is the capital of France?"
NEAR_EVAL = " ".join(f"w{i}" for i in range(40))
NEAR_TRAIN = " ".join(("x" if i in (12, 25, 38) else f"w{i}") for i in range(40))  # 24 of 36 5-grams shared


def ex(p, r="An answer that is long enough."):
    return Example.single(p, r)


def sets():
    train = [ex("Context: " + LONG_EVAL[:150] + " and more words follow here"), ex(EVAL_Q),
             ex(NEAR_TRAIN), ex("Tell me a joke about penguins.")]
    evals = [ex(LONG_EVAL), ex(EVAL_Q), ex(NEAR_EVAL)]
    return train, evals


def test_ngram_and_short_text_overlap():
    train, evals = sets()
    rep = find_leaks(train, evals, LeakageParams(minhash_threshold=1.0))
    got = {lk.train_index: (lk.eval_id, lk.kind) for lk in rep.leaks}
    assert got == {0: (evals[0].id, "ngram"), 1: (evals[1].id, "ngram")}
    assert rep.summary() == {"train": 4, "eval": 3, "leaked_train_records": 2, "matches_by_kind": {"ngram": 2}}


def test_minhash_near_duplicate_with_exact_jaccard():
    train, evals = sets()
    flat, off = shingle_hashes([NEAR_TRAIN, NEAR_EVAL], 5)
    jac = ShingleSets(flat, off).jaccard(0, 1)
    assert jac == 0.5
    rep = find_leaks(train, evals, LeakageParams(minhash_threshold=0.45, ngram=50, short_min_words=50))
    near = {lk.train_index: (lk.eval_id, lk.value) for lk in rep.leaks if lk.kind == "near_duplicate"}
    # the shortened copy of the long eval text is also a near duplicate (Jaccard 14/18)
    assert near == {0: (evals[0].id, 0.7778), 2: (evals[2].id, 0.5)}
    rep = find_leaks(train, evals, LeakageParams(minhash_threshold=0.55, ngram=50, short_min_words=50))
    assert 2 not in {lk.train_index for lk in rep.leaks}


def test_leakage_step_rejects_with_reason():
    train, evals = sets()
    res = LeakageStep(LeakageParams(minhash_threshold=0.45), evals=evals).run(train)
    assert [e.id for e in res.kept] == [train[3].id]
    assert res.rejected[0].reason == f"evaluation leak: shares a word 13-gram with eval record {evals[0].id}"
    assert res.rejected[2].value["kind"] == "near_duplicate"


def test_check_leak_cli_exit_codes(tmp_path):
    train, evals = sets()
    write_examples(tmp_path / "train.jsonl", train)
    write_examples(tmp_path / "eval.jsonl", evals)
    write_examples(tmp_path / "clean.jsonl", [train[3]])
    app = sftflow_app
    r = CliRunner().invoke(app, ["check-leak", str(tmp_path / "train.jsonl"), "--eval", str(tmp_path / "eval.jsonl"),
                                 "-o", str(tmp_path / "leaks.json")])
    assert r.exit_code == 1, r.output
    report = json.loads((tmp_path / "leaks.json").read_text())
    assert report["summary"]["leaked_train_records"] == 2
    r = CliRunner().invoke(app, ["check-leak", str(tmp_path / "clean.jsonl"), "--eval", str(tmp_path / "eval.jsonl")])
    assert r.exit_code == 0, r.output


def test_short_eval_prompt_copied_inside_a_longer_training_text():
    short_eval = ex("What is the boiling point of water at sea level?")          # 10 words < 13
    train = [ex("Here is a question from my homework. What is the boiling point of water at sea level? "
                "Please explain the answer step by step."),
             ex("What is the boiling point of milk?"),                           # shares only part
             ex("Water boils at sea level, as every cook knows.")]
    tiny_eval = ex("Hello there")                                                 # too short to mean a copy
    rep = find_leaks(train + [ex("Say hello there to everyone you meet today please.")], [short_eval, tiny_eval],
                     LeakageParams(minhash_threshold=1.0))
    assert {lk.train_index: (lk.eval_id, lk.kind) for lk in rep.leaks} == {0: (short_eval.id, "ngram")}
    assert rep.leaks[0].value == "contains the whole 10-word eval text"
