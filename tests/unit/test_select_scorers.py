"""Scores equal a direct transformers computation; cache and resume compute nothing twice."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from sftflow import Example
from sftflow.select.cache import ScoreCache
from sftflow.select.scorers import ModelScorer, alone_messages, option_spec
from sftflow.chat import encode

EXAMPLES = [
    Example.single("What is the capital of France?", "Paris."),
    Example.single("Say hello.", "Hello! How can I help you today?"),
    Example.single("List three fruits.", "Apple, banana and cherry."),
    Example(messages=[{"role": "system", "content": "You answer in one word."},
                      {"role": "user", "content": "Opposite of hot?"},
                      {"role": "assistant", "content": "Cold"}]),
    Example.single("Count to five.", "1 2 3 4 5"),
]


def direct_sum(model, tok, messages):
    enc = encode(messages, tok, train_on="last")
    ids, labels = torch.tensor([enc.input_ids]), torch.tensor([enc.labels])
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    n = int((labels[0, 1:] != -100).sum())
    return float(F.cross_entropy(logits[0, :-1], labels[0, 1:], reduction="sum")), n


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval(), tok


def scorer(tiny_model_dir, cache=None, **kw):
    kw.setdefault("precision", "fp32")
    return ModelScorer(tiny_model_dir, cache=cache, max_length=512, **kw)


def test_ppl_and_ifd_equal_direct_computation(tiny, tiny_model_dir):
    model, tok = tiny
    exs = copy.deepcopy(EXAMPLES)
    s = scorer(tiny_model_dir, model_obj=model, tokenizer=tok)
    s.score(exs, ["ppl", "ifd"])
    for ex in exs:
        sc = ex.metadata["scores"]
        g, n = direct_sum(model, tok, ex.messages)
        a, na = direct_sum(model, tok, alone_messages(ex))
        assert sc["response_tokens"] == n
        assert sc["response_loss"] == pytest.approx(g / n, rel=1e-4)
        assert sc["ppl"] == pytest.approx(math.exp(g / n), rel=1e-4)
        assert sc["response_loss_alone"] == pytest.approx(a / na, rel=1e-4)
        assert sc["ifd"] == pytest.approx((g / n) / (a / na), rel=1e-4)
        assert ("ifd_above_1" in sc.get("flags", [])) == (sc["ifd"] > 1)
        assert sc["model"]["name"] == tiny_model_dir
        assert sc["model"]["max_length"] == 512 and sc["model"]["precision"] == "fp32"


def test_alone_is_the_response_after_an_empty_user_turn():
    ex = EXAMPLES[3]
    assert alone_messages(ex) == [{"role": "user", "content": ""}, {"role": "assistant", "content": "Cold"}]


def test_ifd_above_one_is_flagged_from_known_losses(tmp_path, tiny_model_dir):
    """Hand-made losses in the cache: given 2.0 vs alone 1.0 -> IFD 2, flagged; 1.0 vs 2.0 -> 0.5."""
    cache = ScoreCache(tmp_path / "c.sqlite")
    s = scorer(tiny_model_dir, cache=cache)
    a, b = Example.single("q1", "r1"), Example.single("q2", "r2")
    from sftflow.schema import content_id
    rows = {}
    for ex, given, alone in [(a, 2.0, 1.0), (b, 1.0, 2.0)]:
        for msgs, mean in [(ex.messages, given), (alone_messages(ex), alone)]:
            key = ScoreCache.make_key("loss_last", s.identity.key, content_id(msgs))
            rows[key] = {"loss_sum": mean * 4, "n_tokens": 4, "mean": mean, "flag": None,
                         "length": 10, "detail": ""}
    cache.put_many(rows)
    counts = s.score([a, b], ["ppl", "ifd"])
    assert s.model_loads == 0 and s.computed == 0
    assert a.metadata["scores"]["ifd"] == pytest.approx(2.0)
    assert a.metadata["scores"]["flags"] == ["ifd_above_1"]
    assert b.metadata["scores"]["ifd"] == pytest.approx(0.5)
    assert "flags" not in b.metadata["scores"]
    assert counts["ifd_above_1"] == 1


def test_too_long_gets_null_scores_and_a_flag(tiny, tiny_model_dir):
    model, tok = tiny
    ex = Example.single("word " * 300, "ok")
    s = ModelScorer(tiny_model_dir, model_obj=model, tokenizer=tok, max_length=64, precision="fp32")
    s.score([ex], ["ppl", "ifd"])
    sc = ex.metadata["scores"]
    assert sc["response_loss"] is None and sc["ppl"] is None and sc["ifd"] is None
    assert "too_long" in sc["flags"]
    assert sc["response_loss_alone"] is not None      # the response alone fits


def test_option_probabilities(tiny, tiny_model_dir):
    model, tok = tiny
    ex = Example.single("Which is a colour? Options: red, dog, seven", "red",
                        metadata={"options": ["red", "dog", "seven"], "answer": "red"})
    ex2 = Example.single("Pick B.", "B", metadata={"choices": ["A", "B"], "answer": 1})
    plain = Example.single("No options here.", "fine")
    s = scorer(tiny_model_dir, model_obj=model, tokenizer=tok)
    counts = s.score([ex, ex2, plain], ["option_probs"])
    assert counts["multiple_choice"] == 2
    sc = ex.metadata["scores"]
    expected = []
    for o in ["red", "dog", "seven"]:
        lsum, _ = direct_sum(model, tok, [ex.messages[0], {"role": "assistant", "content": o}])
        expected.append(math.exp(-lsum))
    assert sc["option_probs"] == pytest.approx(expected, rel=1e-4)
    assert sc["option_prob_sum"] == pytest.approx(sum(expected), rel=1e-4)
    assert 0 < sc["option_prob_sum"] <= 1       # disjoint events: "this option, then stop"
    assert sc["answer_prob"] == pytest.approx(expected[0], rel=1e-4)
    assert ex2.metadata["scores"]["answer_prob"] == ex2.metadata["scores"]["option_probs"][1]
    assert "option_probs" not in plain.metadata.get("scores", {})


def test_option_spec_rejects_bad_answer():
    from sftflow.schema import RecordError
    ex = Example.single("q", "a", metadata={"options": ["x", "y"], "answer": 5})
    with pytest.raises(RecordError, match="out of range"):
        option_spec(ex)
    assert option_spec(Example.single("q", "a", metadata={"options": ["x", "y"], "answer": "B"})) == (["x", "y"], 1)


def test_cache_hit_on_rerun_calls_no_model(tmp_path, tiny_model_dir, monkeypatch):
    cache = ScoreCache(tmp_path / "c.sqlite")
    first = copy.deepcopy(EXAMPLES)
    s1 = scorer(tiny_model_dir, cache=cache)
    s1.score(first, ["ppl", "ifd"])
    assert s1.model_loads == 1 and s1.computed == 2 * len(EXAMPLES)

    import sftflow.select.scorers as mod
    def boom(*a, **k):
        raise AssertionError("model called on a cached rerun")
    monkeypatch.setattr(mod, "example_losses", boom)
    again = copy.deepcopy(EXAMPLES)
    s2 = scorer(tiny_model_dir, cache=ScoreCache(tmp_path / "c.sqlite"))
    s2.score(again, ["ppl", "ifd"])
    assert s2.model_loads == 0 and s2.computed == 0
    assert [e.metadata for e in again] == [e.metadata for e in first]


def test_cache_key_includes_max_length(tmp_path, tiny_model_dir):
    cache = ScoreCache(tmp_path / "c.sqlite")
    scorer(tiny_model_dir, cache=cache).score(copy.deepcopy(EXAMPLES[:2]), ["ppl"])
    s = ModelScorer(tiny_model_dir, cache=cache, max_length=256, precision="fp32")
    s.score(copy.deepcopy(EXAMPLES[:2]), ["ppl"])
    assert s.computed == 2


def test_resume_after_kill_equals_uninterrupted(tmp_path, tiny_model_dir):
    whole = copy.deepcopy(EXAMPLES)
    scorer(tiny_model_dir, cache=ScoreCache(tmp_path / "a.sqlite"), chunk_size=2).score(whole, ["ppl", "ifd"])

    cache_path = tmp_path / "b.sqlite"
    s = scorer(tiny_model_dir, cache=ScoreCache(cache_path), chunk_size=2)

    def kill(chunk):
        if chunk == 1:
            raise KeyboardInterrupt
    s.on_chunk = kill
    with pytest.raises(KeyboardInterrupt):
        s.score(copy.deepcopy(EXAMPLES), ["ppl", "ifd"])
    assert s.computed == 4                           # two chunks of two were done and cached

    resumed = copy.deepcopy(EXAMPLES)
    s2 = scorer(tiny_model_dir, cache=ScoreCache(cache_path), chunk_size=2)
    s2.score(resumed, ["ppl", "ifd"])
    assert s2.computed == 2 * len(EXAMPLES) - 4      # nothing computed twice
    assert [e.metadata for e in resumed] == [e.metadata for e in whole]
