"""embed_texts / example_text: shapes, normalisation, the light TF-IDF option and the default embedder."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from sftflow.embed import embed_texts, example_text
from sftflow.schema import Example


def test_example_text_fields():
    ex = Example(messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"},
                           {"role": "assistant", "content": "Hello."}])
    assert example_text(ex, "prompt") == "Hi?"
    assert example_text(ex, "response") == "Hello."
    assert example_text(ex, "conversation") == "system: Be brief.\nuser: Hi?\nassistant: Hello."
    with pytest.raises(ValueError, match="unknown text field"):
        example_text(ex, "title")


def test_tfidf_rows_normalised_and_empty_is_zero():
    texts = ["the cat sat on the mat", "the cat sat on the mat", "quantum field theory", ""]
    e = embed_texts(texts, method="tfidf")
    assert e.dtype == np.float32 and e.shape[0] == 4
    assert np.linalg.norm(e[:3], axis=1) == pytest.approx([1, 1, 1], abs=1e-6)
    assert float(e[0] @ e[1]) == pytest.approx(1.0, abs=1e-6)
    assert float(e[0] @ e[2]) == pytest.approx(0.0, abs=1e-6)
    assert not e[3].any()


def test_tfidf_large_input_reduced_to_256_dims():
    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(3000)]
    texts = [" ".join(rng.choice(vocab, 12)) for _ in range(400)]
    e = embed_texts(texts, method="tfidf")
    assert e.shape == (400, 256)
    assert np.linalg.norm(e, axis=1) == pytest.approx(np.ones(400), abs=1e-5)


def test_unknown_method():
    with pytest.raises(ValueError, match="unknown embedding method"):
        embed_texts(["a"], method="bag")


def test_default_sbert_offline():
    e = embed_texts(["How do I bake bread?", "What is a good bread recipe?", "The stock market fell.", ""])
    assert e.shape == (4, 384) and e.dtype == np.float32
    assert np.linalg.norm(e[:3], axis=1) == pytest.approx([1, 1, 1], abs=1e-5)
    assert float(e[0] @ e[1]) > float(e[0] @ e[2]) + 0.2
    assert not e[3].any()


# -- the embedding cache curation and selection share --------------------------------

def _fake_sbert(calls: list):
    """A deterministic stand-in embedder that records what it was asked to embed."""
    def fake(texts, model=None, *, batch_size=64, method="sbert", progress=False):
        calls.append(list(texts))
        rows = np.array([[len(t), t.count("a") + 1.0, sum(map(ord, t)) % 97 + 1.0] for t in texts],
                        dtype=np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return fake


def _raise(*a, **k):
    raise AssertionError("embedded again")


POOL = [Example.single("How do I bake bread?", "Knead, proof, bake."),
        Example.single("How do I bake bread?", "Knead, proof, bake."),          # a duplicate
        Example.single("What is the capital of France?", "Paris."),
        Example.single("Name a prime number.", "Seven.")]


def test_cache_rows_are_float32_blobs_keyed_by_method_model_and_text(tmp_path, monkeypatch):
    import sqlite3

    from sftflow import embed
    calls: list = []
    monkeypatch.setattr(embed, "embed_texts", _fake_sbert(calls))
    cache = embed.EmbeddingCache(tmp_path / "e.sqlite")
    first = cache.embed(["alpha", "beta", "alpha"], model="m1")
    assert calls == [["alpha", "beta"]]                        # a repeated text is embedded once
    assert (first[0] == first[2]).all() and first.dtype == np.float32
    rows = sqlite3.connect(tmp_path / "e.sqlite").execute(
        "SELECT space, model, text_sha, typeof(vector), length(vector) FROM embeddings ORDER BY text_sha").fetchall()
    assert {(r[0], r[1], r[3], r[4]) for r in rows} == {("sbert", "m1", "blob", 3 * 4)}
    assert {r[2] for r in rows} == {embed.text_key("alpha"), embed.text_key("beta")}
    # only the new text is embedded; another model is another key
    cache.embed(["beta", "gamma"], model="m1")
    cache.embed(["beta"], model="m2")
    assert calls[1:] == [["gamma"], ["beta"]]
    assert len(cache) == 4 and cache.computed == 4


def test_tfidf_rows_are_reused_only_for_the_same_set(tmp_path, monkeypatch):
    from sftflow import embed
    cache = embed.EmbeddingCache(tmp_path / "cache")                 # a folder holds embeddings.sqlite
    texts = ["alpha beta", "gamma delta", "alpha beta gamma"]
    first = cache(texts, method="tfidf")
    assert (tmp_path / "cache" / "embeddings.sqlite").exists()
    monkeypatch.setattr(embed, "embed_texts", _raise)
    assert (cache(texts, method="tfidf") == first).all()
    # a tf-idf space is fitted on its set: the same text in another set is embedded again
    with pytest.raises(AssertionError, match="embedded again"):
        cache(texts[:2], method="tfidf")


def _dedup(cache):
    from sftflow.curate.config import SemanticDedupParams
    from sftflow.curate.dedup import SemanticDedup
    params = SemanticDedupParams(field="conversation", threshold=0.99)   # the text select embeds
    return SemanticDedup(params, embeddings=cache).run(copy.deepcopy(POOL))


def _select_embeddings(cache):
    from sftflow.select.scorers import embed_examples
    return embed_examples(copy.deepcopy(POOL), cache=cache)


def test_curate_reuses_the_vectors_select_cached(tmp_path, monkeypatch):
    from sftflow import embed
    calls: list = []
    monkeypatch.setattr(embed, "embed_texts", _fake_sbert(calls))
    vectors = _select_embeddings(embed.EmbeddingCache(tmp_path / "e.sqlite"))
    assert len(calls) == 1 and len(calls[0]) == 3                    # the duplicate text once
    monkeypatch.setattr(embed, "embed_texts", _raise)
    res = _dedup(embed.EmbeddingCache(tmp_path / "e.sqlite"))
    assert len(res.kept) == 3 and len(res.rejected) == 1
    again = embed.EmbeddingCache(tmp_path / "e.sqlite")
    assert (again.embed([embed.example_text(ex, "conversation") for ex in POOL]) == vectors).all()
    assert again.computed == 0 and again.hits == 4


def test_select_reuses_the_vectors_curate_cached(tmp_path, monkeypatch):
    from sftflow import embed
    calls: list = []
    monkeypatch.setattr(embed, "embed_texts", _fake_sbert(calls))
    assert len(_dedup(embed.EmbeddingCache(tmp_path / "e.sqlite")).kept) == 3
    assert len(calls) == 1
    monkeypatch.setattr(embed, "embed_texts", _raise)
    assert _select_embeddings(embed.EmbeddingCache(tmp_path / "e.sqlite")).shape == (4, 3)
