"""K-Center-Greedy and one-pass clustering on hand-made unit vectors (exact picks)."""

from __future__ import annotations

import numpy as np
import pytest

from sftflow.curate.config import DiversityParams
from sftflow.curate.diversity import DiversityStep
from sftflow.diversity import k_center_greedy, one_pass_cluster
from sftflow.schema import Example


def unit(*degrees):
    r = np.radians(degrees)
    return np.stack([np.cos(r), np.sin(r)], axis=1).astype(np.float32)


def test_k_center_picks_farthest_point_each_time():
    emb = unit(0, 10, 90, 180, 185)
    # from 0 deg: 180 is farthest; then 90 (distance 1 to both); then 10 (0.015) beats 185 (0.004)
    assert k_center_greedy(emb, 3, already=[0]) == [3, 2, 1]
    assert k_center_greedy(emb, 10, already=[0]) == [3, 2, 1, 4]   # capped at what is left


def test_k_center_seeded_first_pick():
    emb = unit(0, 10, 90, 180, 185)
    first = int(np.random.default_rng(7).integers(5))
    picks = k_center_greedy(emb, 2, seed=7)
    assert picks[0] == first and len(picks) == 2
    assert k_center_greedy(emb, 2, seed=7) == picks
    assert k_center_greedy(emb, 0) == []


def test_one_pass_cluster_ids_and_distances():
    emb = unit(0, 10, 90, 95, 5)
    ids, dist = one_pass_cluster(emb, 0.9)
    assert ids.tolist() == [0, 0, 1, 1, 0]
    # cluster 0's centroid ends at 5 deg, cluster 1's at 92.5 deg
    expect = 1 - np.cos(np.radians([5, 5, 2.5, 2.5, 0]))
    assert dist == pytest.approx(expect, abs=1e-5)
    ids_all, _ = one_pass_cluster(emb, -1.0)
    assert ids_all.tolist() == [0, 0, 0, 0, 0]


def _sequential_one_pass(emb, threshold):
    """The definition, one row against every centroid at a time: what the blockwise search must equal."""
    cents, sums, ids = [], [], []
    for v in emb:
        sims = [float(c @ v) for c in cents]
        j = int(np.argmax(sims)) if sims else -1
        if j >= 0 and sims[j] >= threshold:
            sums[j] = sums[j] + v
            cents[j] = sums[j] / np.linalg.norm(sums[j])
        else:
            j = len(cents)
            cents.append(v.copy())
            sums.append(v.copy())
        ids.append(j)
    return ids


@pytest.mark.parametrize("block", [1, 7, 256])
def test_one_pass_cluster_blockwise_equals_the_sequential_definition(block):
    rng = np.random.default_rng(3)
    # Clumps around 40 centres (joins and updates inside one block), copies of one row, and loners.
    centres = rng.standard_normal((40, 16))
    emb = np.concatenate([centres[rng.integers(40, size=600)] + 0.25 * rng.standard_normal((600, 16)),
                          np.repeat(centres[:1], 50, axis=0), rng.standard_normal((150, 16))])
    emb = emb[rng.permutation(len(emb))]
    emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
    ids, _ = one_pass_cluster(emb, 0.8, block=block)
    expect = _sequential_one_pass(emb, 0.8)
    assert 40 <= max(expect) + 1 < len(emb) - 100      # clusters of several rows and single ones
    assert ids.tolist() == expect


def _examples(n):
    return [Example.single(f"prompt {i}", f"a long enough answer {i}") for i in range(n)]


def test_diversity_step_k_center_budget_and_metadata():
    emb = unit(0, 10, 90, 180, 185)
    recs = _examples(5)
    step = DiversityStep(DiversityParams(budget=0.6, seed=1, cluster_threshold=0.9),
                         embeddings=lambda texts, **kw: emb)
    res = step.run(recs)
    assert len(res.kept) == 3 and len(res.rejected) == 2   # round(0.6 * 5)
    assert res.rejected[0].reason == "not among the 3 k-center picks"
    assert {"cluster", "centroid_distance"} <= set(recs[0].metadata["curate"]["diversity"])


def test_diversity_step_one_pass_per_cluster():
    emb = unit(0, 10, 90, 95, 5)
    recs = _examples(5)
    step = DiversityStep(DiversityParams(algorithm="one_pass", cluster_threshold=0.9, per_cluster=1),
                         embeddings=lambda texts, **kw: emb)
    res = step.run(recs)
    assert [e.id for e in res.kept] == [recs[0].id, recs[2].id]
    assert [r.value["cluster"] for r in res.rejected] == [0, 1, 0]
