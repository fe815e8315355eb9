"""Collapsing identical embeddings gives exactly the clusters of the full pair list."""

from __future__ import annotations

import numpy as np
import pytest

from sftflow.curate.dedup import similar_pairs
from sftflow.curate.grouped_dedup import grouped_representatives, identical_groups
from sftflow.curate.minhash import representative_clusters


def pool(seed, n_groups=12, n_distinct=40, dim=8):
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n_groups + n_distinct, dim)).astype(np.float32)
    base[1] = base[0] + 0.05 * rng.standard_normal(dim)       # a near (not identical) neighbour group
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    rows = list(range(n_groups + n_distinct)) + list(rng.integers(0, n_groups, 60))
    rng.shuffle(rows)
    return base[rows]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("policy", ["index", "reverse"])
def test_same_clusters_as_the_full_pair_list(seed, policy):
    emb = pool(seed)
    order_of = (lambda m: sorted(m)) if policy == "index" else (lambda m: sorted(m, reverse=True))
    full_pairs = similar_pairs(emb, 0.6)
    linked_full = np.unique(full_pairs).tolist()
    want = representative_clusters(len(emb), full_pairs, order_of(linked_full))
    rep, linked = grouped_representatives(emb, order_of, lambda v: similar_pairs(v, 0.6))
    assert set(linked) == set(linked_full)
    assert rep.tolist() == want.tolist()


def test_thirty_thousand_identical_rows_make_no_pairs():
    emb = np.ones((30000, 16), dtype=np.float32) / 4.0
    seen = []
    rep, linked = grouped_representatives(emb, sorted, lambda v: seen.append(len(v)) or similar_pairs(v, 0.9))
    assert seen == [1] and len(linked) == 30000 and set(rep.tolist()) == {0}
    assert identical_groups(emb).max() == 0


def test_semantic_dedup_on_template_heavy_data_stays_small():
    import tracemalloc

    from sftflow.curate.config import SemanticDedupParams
    from sftflow.curate.dedup import SemanticDedup
    from sftflow.schema import Example
    rng = np.random.default_rng(0)
    same = np.full((3000, 64), 1 / 8, dtype=np.float32)
    diff = rng.standard_normal((3000, 64)).astype(np.float32)
    diff /= np.linalg.norm(diff, axis=1, keepdims=True)
    emb = np.concatenate([same, diff])
    examples = [Example.single("Fill in: NAME", "ok")] * 3000 + [Example.single(f"q{i}", "ok") for i in range(3000)]
    tracemalloc.start()
    res = SemanticDedup(SemanticDedupParams(threshold=0.9), embeddings=lambda t, **k: emb).run(examples)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(res.kept) == 3001 and len(res.rejected) == 2999
    # 4.5 million pairs among the copies would be > 100 MB; without them a few MB
    assert peak < 60e6, f"{peak / 1e6:.0f} MB"
