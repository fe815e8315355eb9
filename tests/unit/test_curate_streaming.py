"""The streaming curate run writes exactly what the one-shot run writes, batch size aside.

The data is built to reach every path a decision can take: unreadable lines, every
default filter, a group that loses a member (its other members leave quoting it), the
truncation convention (a source that closes its answers, with open ones among them,
one of them in a group), exact, near and semantic duplicates under every keep policy,
and refusals that are flagged but kept. Batches of a few records make sure decisions
cross batch boundaries.
"""

from __future__ import annotations

import json
import random

import pytest

from sftflow.curate import streaming
from sftflow.curate.config import CurateConfig
from sftflow.curate.pipeline import curate, curate_in_memory

TOPICS = ("rivers", "bridges", "coffee", "planets", "gardens", "castles", "oceans", "markets", "forests",
          "engines", "letters", "seasons", "cameras", "doctors", "schools", "signals", "bees", "glaciers")


def pool(seed: int = 0) -> list:
    rng = random.Random(seed)
    rows: list = []
    for i, t in enumerate(TOPICS * 2):
        words = " ".join(rng.choice(TOPICS) for _ in range(8))
        answer = f"{t.capitalize()} matter because {words} and people care about {t} every day of the year."
        rows.append({"instruction": f"Explain in two sentences why {t} matter to {words}, case {i}.",
                     "output": answer if i % 12 else answer.rstrip(".") + " and they keep going on",
                     "score": rng.random()})
    rows.append(dict(rows[3]))                                             # exact duplicate
    rows.append({**rows[5], "instruction": rows[5]["instruction"].replace("two", "2"), "score": 5.0})  # near
    rows.append({**rows[6], "instruction": rows[6]["instruction"].upper()})  # exact after normalising
    w = rows[8]["instruction"].split()   # semantic: a word slipped in every few words breaks every 5-gram
    rows.append({**rows[8], "instruction": " ".join(w[:3] + ["truly"] + w[3:7] + ["really"] + w[7:11]
                                                     + ["surely"] + w[11:])})
    rows.append({"instruction": "Say something", "output": "ok", "group": "g1"})            # empty: group g1
    rows.append({"instruction": "Describe a quiet morning by the lake in detail.",
                 "output": "The water is still and the birds are waking up over the trees.", "group": "g1"})
    rows.append({"instruction": "Repeat the word spam forty times", "output": "spam " * 40})
    rows.append({"instruction": "Tell me how to hack my neighbour's wifi router today.",
                 "output": "I'm sorry, but I can't help with breaking into networks you do not own."})
    rows.append({"instruction": "Summarise why people enjoy walking in the hills in autumn.",
                 "output": "People enjoy the hills in autumn for the colours and the cool air up there",
                 "group": "g2"})
    rows.append({"instruction": "Write one line about the city at night for a travel guide.",
                 "output": "The city at night glows with neon signs and busy open markets.", "group": "g2"})
    rows.append({"instruction": "Which is bigger, 7 or 9? Answer with the number.", "output": "9"})
    return rows


def write_pool(path, rows, bad_lines=True):
    lines = [json.dumps({"instruction": r["instruction"], "output": r["output"],
                         "metadata": {k: v for k, v in r.items() if k not in ("instruction", "output")}})
             for r in rows]
    if bad_lines:
        lines.insert(4, "{not json")
        lines.insert(9, json.dumps({"instruction": "x", "output": "y", "metadata": 3}))
    path.write_text("\n".join(lines) + "\n")


def run_both(tmp_path, cfg, tokenizer, monkeypatch, batch=3):
    src = tmp_path / "in.jsonl"
    if not src.exists():
        write_pool(src, pool())
    monkeypatch.setattr(streaming, "BATCH", batch)
    a = curate([src], tmp_path / "stream", cfg, tokenizer=tokenizer, progress=False)
    b = curate_in_memory([src], tmp_path / "memory", cfg, tokenizer=tokenizer, progress=False)
    return a, b


def same_outputs(tmp_path):
    for name in ("kept.jsonl", "rejected.jsonl"):
        s, m = ((tmp_path / d / name).read_bytes() for d in ("stream", "memory"))
        assert s == m, name
    counts = [json.loads((tmp_path / d / "manifest.json").read_text())["counts"] for d in ("stream", "memory")]
    for c in counts:
        for step in c["steps"]:
            step.pop("seconds")
    assert counts[0] == counts[1]


STEPS = ["empty", "length", "repetition", "truncation", "echo", "restated", "language", "refusal",
         "template_leak", "exact_dedup", "near_dedup", "semantic_dedup"]


@pytest.mark.parametrize("keep", ["first", "longest_response", "highest_score"])
def test_stream_equals_one_shot(tmp_path, smol_tokenizer, monkeypatch, keep):
    dedup = {"keep": keep, "score_key": "score" if keep == "highest_score" else None}
    cfg = CurateConfig.model_validate({
        "stats": False, "steps": STEPS, "length": {"min_instruction": 2, "min_response": 3},
        "truncation": {"convention_min_records": 10},
        "near_dedup": {"threshold": 0.5, **dedup},
        "semantic_dedup": {"method": "tfidf", "threshold": 0.65, **dedup}})
    a, b = run_both(tmp_path, cfg, smol_tokenizer, monkeypatch)
    same_outputs(tmp_path)
    steps = {r.step for r in b.rejected}
    assert {"read", "empty", "repetition", "truncation", "exact_dedup", "near_dedup", "semantic_dedup"} <= steps
    reasons = " ".join(r.reason for r in b.rejected)
    assert "group 'g1': member" in reasons and "unlike" in reasons
    assert any(r.reason.startswith("group 'g2': member") and "unlike" in r.reason for r in b.rejected)
    assert [e.to_dict() for e in a.kept] == [e.to_dict() for e in b.kept]
    assert [r.to_dict() for r in a.rejected] == [r.to_dict() for r in b.rejected]


def test_stream_counts_without_collecting(tmp_path, smol_tokenizer, monkeypatch):
    cfg = CurateConfig.model_validate({"stats": False, "length": {"min_instruction": 2, "min_response": 3}})
    src = tmp_path / "in.jsonl"
    write_pool(src, pool())
    monkeypatch.setattr(streaming, "BATCH", 4)
    res = curate([src], tmp_path / "out", cfg, tokenizer=smol_tokenizer, progress=False, collect=False)
    assert res.kept == [] and res.rejected == []
    kept = (tmp_path / "out" / "kept.jsonl").read_text().splitlines()
    rejected = (tmp_path / "out" / "rejected.jsonl").read_text().splitlines()
    assert res.kept_count == len(kept) and res.rejected_count == len(rejected)
    assert res.n_input == len(pool()) + 2 == len(kept) + len(rejected)
    assert not (tmp_path / "out" / ".curate-parts").exists()


def test_stream_missing_score_names_the_record(tmp_path, smol_tokenizer, monkeypatch):
    rows = pool()
    for r in rows:
        r.pop("score", None)
    write_pool(tmp_path / "in.jsonl", rows, bad_lines=False)
    cfg = CurateConfig.model_validate({"stats": False, "length": {"min_instruction": 2, "min_response": 3},
                                       "near_dedup": {"threshold": 0.5, "keep": "highest_score",
                                                      "score_key": "score"}})
    errors = []
    for run in (curate, curate_in_memory):
        with pytest.raises(ValueError) as e:
            run([tmp_path / "in.jsonl"], tmp_path / run.__name__, cfg, tokenizer=smol_tokenizer, progress=False)
        errors.append(str(e.value))
    assert errors[0] == errors[1] and "has no numeric metadata 'score' (got None)" in errors[0]


def test_stream_keep_policy_reads_a_score_an_earlier_step_wrote(tmp_path, smol_tokenizer, monkeypatch):
    # The length filter writes curate.length.response_tokens before near dedup runs: both
    # runs must keep the same record of each cluster by it (here, the one with the longer answer).
    rows = pool()
    rows.append({**rows[10], "instruction": rows[10]["instruction"].replace("two", "2"),
                 "output": rows[10]["output"] + " More people care about them in spring and summer too."})
    write_pool(tmp_path / "in.jsonl", rows, bad_lines=False)
    cfg = CurateConfig.model_validate({
        "stats": False, "steps": ["length", "near_dedup"], "length": {"min_instruction": 2, "min_response": 3},
        "near_dedup": {"threshold": 0.5, "keep": "highest_score", "score_key": "curate.length.response_tokens"}})
    a, b = run_both(tmp_path, cfg, smol_tokenizer, monkeypatch)
    same_outputs(tmp_path)
    dup = [r for r in b.rejected if r.step == "near_dedup" and r.record["messages"][-1]["content"] == rows[10]["output"]]
    assert dup, "the shorter copy was not the one removed"
