"""Exact, near-duplicate and semantic dedup: exact values on hand-made records."""

from __future__ import annotations

import string

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sftflow.curate.config import ExactDedupParams, NearDedupParams, SemanticDedupParams
from _shingle_sets import ShingleSets
from sftflow.curate.dedup import ExactDedup, NearDedup, SemanticDedup, similar_pairs
from sftflow.curate.minhash import (choose_bands, jaccard_many, near_duplicates, normalize_text, normalized_key,
                                    shingle_hashes, word_hashes)
from sftflow.curate.filters import words
from sftflow.schema import Example

A = "the quick brown fox jumps over the lazy dog near the river bank"
B = "the quick brown fox jumps over the lazy dog near the river bend"   # 8 of 9 shingles shared
C = "completely unrelated sentence about baking sourdough bread at home on sunday"


def ex(prompt, response="A sufficiently long answer.", **meta):
    return Example.single(prompt, response, metadata=meta)


def test_normalisation_folds_case_space_punctuation():
    assert normalize_text("  Hello,   WORLD!\n") == "hello world"
    assert normalized_key("Hello,   WORLD!") == b"hello world"
    assert normalized_key("Café, ÜBER") == "café über".encode()
    assert normalized_key("a-b") == normalized_key("a b") == normalize_text("a-b").encode()


def test_word_hashes_stable_and_position_independent():
    f, off = word_hashes(["Hello world", "", "WORLD, hello!"])
    assert off.tolist() == [0, 2, 2, 4]
    assert f[0] == f[3] and f[1] == f[2] and f[0] != f[1]
    f2, _ = word_hashes(["hello"])
    assert f2[0] == f[0]  # the same word hashes the same in another call


def test_shingle_counts_and_order():
    flat, off = shingle_hashes(["a b c d e f", "a b", "", "f e d c b a"], 5)
    assert np.diff(off).tolist() == [2, 1, 0, 2]
    assert set(flat[0:2].tolist()).isdisjoint(flat[3:5].tolist())  # order matters inside a shingle


def test_exact_jaccard_of_shingle_sets():
    flat, off = shingle_hashes([A, B, C], 5)
    sets = ShingleSets(flat, off)
    assert sets.jaccard(0, 1) == pytest.approx(8 / 10)
    assert sets.jaccard(0, 2) == 0.0


def test_choose_bands_fits_budget_and_favours_recall():
    b, r = choose_bands(0.7, 128)
    assert (b, r) == (20, 6)
    assert b * r <= 128
    assert 1 - (1 - 0.7 ** r) ** b > 0.9   # a pair at the threshold becomes a candidate > 90%


def test_exact_dedup_keeps_first_and_names_it():
    recs = [ex("Hello, world!"), ex("hello   world"), ex("Hello world?", "other answer"), ex("Goodbye")]
    res = ExactDedup().run(recs)
    assert [e.id for e in res.kept] == [recs[0].id, recs[3].id]
    assert [r.value for r in res.rejected] == [{"duplicate_of": recs[0].id}] * 2
    assert res.rejected[0].reason == f"exact duplicate (prompt, normalised) of {recs[0].id}"
    # over the whole conversation the third differs by its response
    res2 = ExactDedup(ExactDedupParams(field="conversation")).run(recs)
    assert len(res2.kept) == 3


def test_near_dedup_confirms_and_clusters():
    recs = [ex(A), ex(C), ex(B)]
    res = NearDedup().run(recs)
    assert [e.id for e in res.kept] == [recs[0].id, recs[1].id]
    rej = res.rejected[0]
    assert rej.step == "near_dedup" and rej.record["id"] == recs[2].id
    assert rej.value == {"duplicate_of": recs[0].id, "similarity": 0.8}
    assert recs[0].metadata["curate"]["near_dedup"] == {"cluster": recs[0].id, "cluster_size": 2}
    assert recs[2].metadata["curate"]["near_dedup"]["cluster"] == recs[0].id
    assert "near_dedup" not in recs[1].metadata.get("curate", {})


def test_near_dedup_threshold_above_pair_keeps_both():
    res = NearDedup(NearDedupParams(threshold=0.85)).run([ex(A), ex(B)])
    assert len(res.kept) == 2 and not res.rejected


def test_keep_policies():
    short, long_ = ex(A, "short answer here"), ex(B, "a much longer answer than the other one")
    res = NearDedup(NearDedupParams(keep="longest_response")).run([short, long_])
    assert [e.id for e in res.kept] == [long_.id]
    lo, hi = ex(A, score=0.2), ex(B, score=0.9)
    res = NearDedup(NearDedupParams(keep="highest_score", score_key="score")).run([lo, hi])
    assert [e.id for e in res.kept] == [hi.id]
    with pytest.raises(ValueError, match="has no numeric metadata 'score'"):
        NearDedup(NearDedupParams(keep="highest_score", score_key="score")).run([ex(A), ex(B)])


def test_near_duplicates_is_deterministic_and_transitive():
    texts = [A, B, A.replace("quick", "quiet"), C]
    # 64 bands of 2 rows: a pair at J=0.64 is a candidate with probability ~1 - 1e-14
    r1 = near_duplicates(texts, threshold=0.6, bands=64, rows=2)
    r2 = near_duplicates(texts, threshold=0.6, bands=64, rows=2)
    assert r1.pairs.tolist() == [[0, 2], [0, 1]] or r1.pairs.tolist() == [[0, 1], [0, 2]]
    assert r1.jaccard.round(4).tolist() in ([0.8, 0.6364], [0.6364, 0.8])
    assert r1.pairs.tolist() == r2.pairs.tolist()
    assert len(set(r1.labels[:3].tolist())) == 1 and r1.labels[3] != r1.labels[0]


def test_similar_pairs_blockwise_matches_brute_force():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(23, 8)).astype(np.float32)
    emb[5] = emb[2] + 0.01
    emb[17] = emb[2]
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    sims = emb @ emb.T
    brute = sorted((i, j) for i in range(23) for j in range(i + 1, 23) if sims[i, j] >= 0.9)
    for block in (1, 3, 7, 1024):
        assert sorted(map(tuple, similar_pairs(emb, 0.9, block).tolist())) == brute
    assert (2, 5) in brute and (2, 17) in brute


def test_semantic_dedup_with_given_embeddings():
    vecs = np.array([[1, 0, 0], [0.96, 0.28, 0], [0, 1, 0]], dtype=np.float32)  # cos(0,1) = 0.96
    recs = [ex("one"), ex("uno"), ex("other")]
    step = SemanticDedup(SemanticDedupParams(threshold=0.95), embeddings=lambda texts, **kw: vecs)
    res = step.run(recs)
    assert [e.id for e in res.kept] == [recs[0].id, recs[2].id]
    assert res.rejected[0].value == {"duplicate_of": recs[0].id, "similarity": 0.96}
    res = SemanticDedup(SemanticDedupParams(threshold=0.97), embeddings=lambda texts, **kw: vecs).run(recs)
    assert len(res.kept) == 3


def test_semantic_dedup_tfidf_finds_paraphrase():
    recs = [ex("How do I bake sourdough bread at home?"), ex("Translate 'cat' into French."),
            ex("how do i bake sourdough bread at home today")]
    res = SemanticDedup(SemanticDedupParams(method="tfidf", threshold=0.7)).run(recs)
    assert [r.record["id"] for r in res.rejected] == [recs[2].id]


def test_jaccard_many_matches_python_sets():
    rng = np.random.default_rng(1)
    vocab = [f"w{i}" for i in range(12)]
    texts = [" ".join(rng.choice(vocab, rng.integers(0, 15))) for _ in range(30)] + ["a a a a a a a"]
    flat, off = shingle_hashes(texts, 3)
    sets = ShingleSets(flat, off)
    pairs = np.array([(i, j) for i in range(len(texts)) for j in range(i + 1, len(texts))])
    got = jaccard_many(flat, off, pairs)
    want = [sets.jaccard(int(i), int(j)) for i, j in pairs]
    assert got == pytest.approx(want)
    assert any(0 < w < 1 for w in want)


def test_rensa_band_flags_agree_with_numpy_banding():
    # minhash_candidates lets rensa flag rows sharing a band, then lists the pairs by banding
    # the flagged rows in numpy: both must cut bands the same way (contiguous rows).
    import random

    import rensa

    from sftflow.curate.minhash import _band_pairs
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(300)]
    base = [" ".join(rng.choice(vocab) for _ in range(30)) for _ in range(600)]
    texts = base + [" ".join(w if rng.random() > 0.08 else "zz" for w in t.split()) for t in base[:300]]
    flat, off = shingle_hashes(texts, 5)
    m = rensa.RMinHash.digest_matrix_from_flat_token_hashes(flat, off.astype(np.uint64), 120, 0)
    flags = np.array(rensa.RMinHashLSH(0.5, 120, 20).query_duplicate_flags_matrix_one_shot(m))
    pairs = _band_pairs(np.array(m.to_rows(), dtype=np.uint32), 20, 6)
    ours = np.zeros(len(texts), dtype=bool)
    ours[pairs.ravel()] = True
    assert flags.sum() > 100 and (flags == ours).all()


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=40) | st.text(alphabet=string.printable, max_size=40))
def test_fast_exact_key_equals_normalised_text(text):
    assert normalized_key(text) == normalize_text(text).encode()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(codec="utf-8"), max_size=30) |
                st.text(alphabet=string.printable, max_size=30), min_size=1, max_size=5))
def test_word_hashes_agree_with_words(texts):
    flat, off = word_hashes(texts)
    all_words = [w for t in texts for w in words(t)]
    assert np.diff(off).tolist() == [len(words(t)) for t in texts]
    by_word: dict = {}
    for w, h in zip(all_words, flat.tolist()):
        assert by_word.setdefault(w, h) == h          # one word, one hash
    assert len(set(by_word.values())) == len(by_word)  # distinct words, distinct hashes


def test_shingling_in_batches_equals_one_pass(monkeypatch):
    import sftflow.curate.minhash as d
    texts = [A, B, C, "", "short one", A + " " + C] * 5
    whole = d.shingle_hashes(texts, 5)
    monkeypatch.setattr(d, "_BATCH", 4)
    batched = d.shingle_hashes(texts, 5)
    assert (whole[0] == batched[0]).all() and (whole[1] == batched[1]).all()


def test_texts_of_matches_example_text():
    from sftflow.curate.dedup import texts_of
    from sftflow.embed import example_text
    exs = [ex("plain"), Example.single("with system", "ok", system="Be brief."),
           Example(messages=[{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"},
                             {"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}])]
    for field in ("prompt", "response", "conversation"):
        assert texts_of(exs, field) == [example_text(e, field) for e in exs]


def test_a_chain_removes_only_records_close_to_the_one_kept():
    a2 = A.replace("quick", "quiet")          # J(A, a2) = 7/11; J(B, a2) = 6/12
    recs = [ex(B), ex(A), ex(a2)]             # B ~ A ~ a2, but a2 is below the bar to B
    res = NearDedup(NearDedupParams(threshold=0.6, bands=64, rows=2)).run(recs)
    assert [e.id for e in res.kept] == [recs[0].id, recs[2].id]
    [rej] = res.rejected
    assert rej.record["id"] == recs[1].id and rej.value == {"duplicate_of": recs[0].id, "similarity": 0.8}
    assert recs[2].metadata["curate"]["near_dedup"] == {"cluster": recs[2].id, "cluster_size": 1}
    assert recs[0].metadata["curate"]["near_dedup"] == {"cluster": recs[0].id, "cluster_size": 2}


def test_the_keep_policy_chooses_the_centres_of_a_chain():
    a2 = A.replace("quick", "quiet")
    # A is the middle of the chain and has the longest answer: it is kept and both ends go
    recs = [ex(B, "short"), ex(A, "the longest answer of the three by far"), ex(a2, "mid length")]
    res = NearDedup(NearDedupParams(threshold=0.6, bands=64, rows=2, keep="longest_response")).run(recs)
    assert [e.id for e in res.kept] == [recs[1].id]
    assert sorted(r.value["similarity"] for r in res.rejected) == [0.6364, 0.8]
    assert all(r.value["duplicate_of"] == recs[1].id for r in res.rejected)


def test_semantic_chain_keeps_the_far_end():
    # cos(0, 1) = cos(1, 2) = 0.96 but cos(0, 2) = 0.8432: under 0.95 record 2 is no duplicate of 0
    t = np.arccos(0.96)
    vecs = np.array([[1, 0], [np.cos(t), np.sin(t)], [np.cos(2 * t), np.sin(2 * t)]], dtype=np.float32)
    recs = [ex("one"), ex("uno"), ex("eins")]
    res = SemanticDedup(SemanticDedupParams(threshold=0.95), embeddings=lambda texts, **kw: vecs).run(recs)
    assert [e.id for e in res.kept] == [recs[0].id, recs[2].id]
    assert [r.value["duplicate_of"] for r in res.rejected] == [recs[0].id]


def test_band_pairs_over_chosen_rows_equal_the_pairs_of_those_rows_alone():
    import numpy as np

    from sftflow.curate.banding import pairs_from_keys
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 6, size=(300, 4)).astype(np.uint64)     # small key space: many buckets of 2+
    rows = np.sort(rng.choice(300, size=170, replace=False))
    got = pairs_from_keys(keys, rows=rows)
    assert len(got) > 100
    assert np.array_equal(got, pairs_from_keys(keys[rows]))
    assert not np.array_equal(got, pairs_from_keys(keys[:170]))
