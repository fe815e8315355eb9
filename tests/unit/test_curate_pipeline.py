"""The curate pipeline end to end: nothing lost, reasons written, reruns identical, bad input handled."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from sftflow.cli import app as sftflow_app
from sftflow.curate.config import CurateConfig
from sftflow.embed import EmbeddingCache
from sftflow.curate.pipeline import build_steps, curate, run_steps
from sftflow.io import read_examples, write_examples
from sftflow.schema import Example, RecordError

GOOD = [("Explain why the sky is blue in simple words.",
         "Sunlight scatters off air molecules, and blue light scatters the most, so the sky looks blue."),
        ("Give three tips for staying focused while studying.",
         "Put your phone away, work in short timed blocks, and take a real break between them."),
        ("What does a compiler do?",
         "A compiler translates source code written by people into machine code a computer can run.")]


def cfg(**kw) -> CurateConfig:
    base = {"stats": False, "length": {"min_instruction": 2, "min_response": 3}}
    base.update(kw)
    return CurateConfig.model_validate(base)


def lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def write_raw(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_curate_writes_kept_rejected_manifest(tmp_path, smol_tokenizer):
    rows = [{"instruction": p, "output": r} for p, r in GOOD]
    rows += [{"instruction": GOOD[0][0].upper(), "output": "A different answer about the colour of the sky."},
             {"instruction": "Say something", "output": "ok"},
             {"instruction": "Repeat the word spam forty times", "output": "spam " * 40}]
    write_raw(tmp_path / "in.jsonl", rows)
    res = curate([tmp_path / "in.jsonl"], tmp_path / "out", cfg(stats=True), tokenizer=smol_tokenizer,
                 progress=False)
    kept, rej = lines(tmp_path / "out" / "kept.jsonl"), lines(tmp_path / "out" / "rejected.jsonl")
    assert len(kept) == 3 and len(rej) == 3 and res.n_input == 6
    by_step = {r["step"]: r for r in rej}
    assert set(by_step) == {"empty", "repetition", "exact_dedup"}
    for r in rej:
        assert {"id", "messages", "metadata", "step", "reason", "value"} <= set(r)
    assert by_step["empty"]["reason"].startswith("near-empty response: 2 characters < 20")
    man = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert man["stage"] == "curate" and len(man["inputs"][0]["sha256"]) == 64
    assert man["counts"]["input"] == 6 and man["counts"]["kept"] == 3
    assert [s["step"] for s in man["counts"]["steps"]] == CurateConfig().steps
    assert man["config"]["near_dedup"]["threshold"] == 0.7
    assert (tmp_path / "out" / "stats.json").exists() and (tmp_path / "out" / "funnel.png").exists()
    # measurements travel with the kept records
    assert kept[0]["metadata"]["curate"]["length"]["response_tokens"] > 0


def test_rerun_is_byte_identical(tmp_path, smol_tokenizer):
    rows = [{"instruction": f"{p} Variant {i}.", "output": r} for i in range(3) for p, r in GOOD]
    write_raw(tmp_path / "in.jsonl", rows)
    for name in ("a", "b"):
        curate([tmp_path / "in.jsonl"], tmp_path / name, cfg(), tokenizer=smol_tokenizer, progress=False)
    for f in ("kept.jsonl", "rejected.jsonl"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()


def test_bad_input_is_rejected_with_reasons(tmp_path, smol_tokenizer):
    huge = "word " * 200_000                     # a 1 MB response
    raw = (json.dumps({"instruction": GOOD[0][0], "output": GOOD[0][1]}) + "\n").encode()
    raw += b'{"instruction": "caf\xe9", "output": "bad bytes"}\n'                       # not UTF-8
    raw += (json.dumps({"instruction": "Summarize this text please.", "output": huge}) + "\n").encode()
    raw += (json.dumps({"instruction": "Translate to Japanese: good morning", "output":
                        "おはようございます is how you say good morning in Japanese."}) + "\n").encode()
    raw += (json.dumps({"instruction": "Hi there friend", "output": "   "}) + "\n").encode()   # empty turn
    raw += b'{"instruction": "no output field"}\n'
    (tmp_path / "in.jsonl").write_bytes(raw)
    res = curate([tmp_path / "in.jsonl"], tmp_path / "out", cfg(), tokenizer=smol_tokenizer, progress=False)
    rej = lines(tmp_path / "out" / "rejected.jsonl")
    reasons = {r["step"]: r["reason"] for r in rej}
    assert res.n_input == 6 and len(res.kept) == 2   # the good one and the mixed-script one
    read = [r for r in rej if r["step"] == "read"]
    assert len(read) == 2
    assert any("line 2" in r["reason"] and "not valid UTF-8" in r["reason"] for r in read)
    assert any("line 6" in r["reason"] and "output" in r["reason"] for r in read)
    assert reasons["length"].startswith("response too long: ") and "> 2048" in reasons["length"]
    assert reasons["empty"] == "empty turn: messages[1] (assistant) has no text"


def test_empty_file_is_a_clear_error(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(RecordError, match="empty.jsonl: file is empty"):
        curate([tmp_path / "empty.jsonl"], tmp_path / "out", cfg(), progress=False)


def test_leakage_step_added_with_eval(tmp_path, smol_tokenizer):
    write_examples(tmp_path / "train.jsonl", [Example.single(p, r) for p, r in GOOD])
    write_examples(tmp_path / "eval.jsonl", [Example.single(GOOD[1][0], "Another answer entirely here.")])
    res = curate([tmp_path / "train.jsonl"], tmp_path / "out", cfg(), tokenizer=smol_tokenizer,
                 eval_paths=[tmp_path / "eval.jsonl"], progress=False)
    assert [r.step for r in res.rejected] == ["leakage"]
    assert res.funnel[0]["step"] == "leakage"


def test_cli_curate_with_set_overrides(tmp_path, smol_path):
    write_examples(tmp_path / "in.jsonl", [Example.single(p, r) for p, r in GOOD])
    app = sftflow_app
    r = CliRunner().invoke(app, ["curate", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "out"),
                                 "--model", smol_path, "--set", "empty.min_response_chars=88",
                                 "--set", "length.min_response=5", "--set", "stats=false", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "3 in, 2 kept, 1 rejected" in r.output
    r = CliRunner().invoke(app, ["curate", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "o2"),
                                 "--set", "near_dedup.treshold=0.9"])
    assert r.exit_code != 0 and "did you mean 'threshold'" in str(r.exception)


# --------------------------------------------------------------------------- properties

WORDS = ["alpha", "beta", "gamma", "delta", "river", "stone", "bright", "quiet", "seven", "market",
         "I cannot", "<|im_end|>", "the", "a", "of"]
text = st.lists(st.sampled_from(WORDS), min_size=0, max_size=30).map(" ".join)
record = st.tuples(text, text)


def _examples(pairs):
    return [Example(messages=[{"role": "user", "content": p}, {"role": "assistant", "content": r}])
            for p, r in pairs]


PROP_CFG = CurateConfig.model_validate({"stats": False, "empty": {"min_response_chars": 5},
                                        "length": {"min_instruction": 1, "min_response": 1},
                                        "near_dedup": {"threshold": 0.5}})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(record, min_size=0, max_size=25))
def test_property_kept_plus_rejected_is_input(smol_tokenizer, pairs):
    exs = _examples(pairs)
    res = run_steps(exs, build_steps(PROP_CFG, tokenizer=smol_tokenizer))
    assert len(res.kept) + len(res.rejected) == len(exs)
    assert Counter(e.id for e in res.kept) + Counter(r.record["id"] for r in res.rejected) == \
        Counter(e.id for e in exs)
    assert all(r.reason and r.step in PROP_CFG.steps for r in res.rejected)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(record, min_size=0, max_size=25))
def test_property_dedup_is_idempotent(smol_tokenizer, pairs):
    first = run_steps(_examples(pairs), build_steps(PROP_CFG, tokenizer=smol_tokenizer))
    again_in = [Example.from_dict(e.to_dict()) for e in first.kept]
    second = run_steps(again_in, build_steps(PROP_CFG, tokenizer=smol_tokenizer))
    assert not second.rejected
    assert [e.id for e in second.kept] == [e.id for e in first.kept]


def test_read_rejects_count_in_invariant(tmp_path, smol_tokenizer):
    write_raw(tmp_path / "in.jsonl", [{"instruction": p, "output": r} for p, r in GOOD] + [{"bogus": 1}])
    res = curate([tmp_path / "in.jsonl"], tmp_path / "out", cfg(), tokenizer=smol_tokenizer, progress=False)
    n_lines = len((tmp_path / "in.jsonl").read_text().splitlines())
    assert len(lines(tmp_path / "out" / "kept.jsonl")) + len(lines(tmp_path / "out" / "rejected.jsonl")) == n_lines
    assert read_examples(tmp_path / "out" / "kept.jsonl").examples[0].metadata["_source"] == "in"
    assert res.funnel[0]["step"] == "read"


def test_embedding_cache_resumes_without_embedding_again(tmp_path, monkeypatch):
    from sftflow import embed
    cache = EmbeddingCache(tmp_path / "cache")
    first = cache(["alpha beta", "gamma delta", "alpha beta gamma"], method="tfidf")
    assert (tmp_path / "cache" / "embeddings.sqlite").exists() and len(cache) == 3   # one row per text

    def boom(*a, **k):
        raise AssertionError("embedded again")
    monkeypatch.setattr(embed, "embed_texts", boom)
    again = cache(["alpha beta", "gamma delta", "alpha beta gamma"], method="tfidf")
    assert (again == first).all()
    with pytest.raises(AssertionError, match="embedded again"):
        cache(["something new"], method="tfidf")


def test_stats_cli_writes_json_and_plots(tmp_path, smol_path):
    write_examples(tmp_path / "d.jsonl", [Example.single(p, r) for p, r in GOOD])
    app = sftflow_app
    r = CliRunner().invoke(app, ["stats", str(tmp_path / "d.jsonl"), "-o", str(tmp_path / "s"),
                                 "--model", smol_path, "--embed", "tfidf"])
    assert r.exit_code == 0, r.output
    s = json.loads((tmp_path / "s" / "stats.json").read_text())
    assert s["records"] == 3 and s["sources"] == {"d": 3}
    assert (tmp_path / "s" / "lengths.png").exists() and (tmp_path / "s" / "tasks.png").exists()


def test_run_stage_leak_check_default_and_off(tmp_path, smol_path):
    from sftflow.pipeline.stages.curate import run_stage
    from sftflow.pipeline.recipe import Recipe, RunState
    train = [Example.single(p, r) for p, r in GOOD]
    write_examples(tmp_path / "train.jsonl", train)
    write_examples(tmp_path / "eval.jsonl", [train[0]])
    for leak_check, expect in ((None, ["leakage"]), (False, [])):
        state = RunState(recipe=Recipe(model=smol_path), out_dir=tmp_path / f"run-{leak_check}",
                         train_path=tmp_path / "train.jsonl", test_path=tmp_path / "eval.jsonl")
        c = CurateConfig.model_validate({"leak_check": leak_check, "stats": False,
                                         "length": {"min_instruction": 1, "min_response": 1}})
        run_stage(c, state)
        assert state.train_path == tmp_path / f"run-{leak_check}" / "curate" / "kept.jsonl"
        rej = lines(state.train_path.parent / "rejected.jsonl")
        assert [r["step"] for r in rej] == expect
    state = RunState(recipe=Recipe(model=smol_path), out_dir=tmp_path / "run-x",
                     train_path=tmp_path / "train.jsonl")
    with pytest.raises(ValueError, match="no validation or test file"):
        run_stage(CurateConfig(leak_check=True), state)
