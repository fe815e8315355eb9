"""embed_texts / example_text: shapes, normalisation, the light TF-IDF option and the default embedder."""

from __future__ import annotations

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
