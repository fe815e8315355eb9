"""Diversity selection on embeddings: K-Center-Greedy and one-pass clustering.

Both take float32 rows that are L2-normalised (``sftflow.embed.embed_texts``), so the
cosine distance is ``1 - a @ b``.

- ``k_center_greedy`` picks, again and again, the point farthest from everything
  picked so far: a 2-approximation of the minimax cover (Sener & Savarese, core-sets),
  which spreads a budget over the whole space instead of the densest region.
- ``one_pass_cluster`` streams once over the rows, joining the nearest centroid when
  the cosine similarity reaches ``threshold`` and starting a new cluster otherwise.
  Linear in N times the number of clusters, no N x N matrix; blockwise (one matrix
  product per block of rows) with the sequential result.
"""

from __future__ import annotations

import numpy as np


def k_center_greedy(emb: np.ndarray, budget: int, *, seed: int = 0,
                    already: list[int] | None = None) -> list[int]:
    """Indices of ``budget`` new centres, in the order picked (``already`` are fixed centres).

    The first centre (when ``already`` is empty) is drawn with ``seed``; every later one
    is the row whose cosine distance to its nearest centre is largest (ties: lowest index).
    """
    emb = np.asarray(emb, dtype=np.float32)
    n = emb.shape[0]
    already = list(already or [])
    budget = max(0, min(int(budget), n - len(set(already))))
    if budget == 0 or n == 0:
        return []
    min_dist = np.full(n, np.inf, dtype=np.float32)
    chosen = np.zeros(n, dtype=bool)
    for i in already:
        chosen[i] = True
        np.minimum(min_dist, 1.0 - emb @ emb[i], out=min_dist)
    picked: list[int] = []
    if not already:
        first = int(np.random.default_rng(seed).integers(n))
        picked.append(first)
        chosen[first] = True
        np.minimum(min_dist, 1.0 - emb @ emb[first], out=min_dist)
    while len(picked) < budget:
        cand = np.where(chosen, -np.inf, min_dist)
        nxt = int(np.argmax(cand))
        picked.append(nxt)
        chosen[nxt] = True
        np.minimum(min_dist, 1.0 - emb @ emb[nxt], out=min_dist)
    return picked


def one_pass_cluster(emb: np.ndarray, threshold: float, *, block: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(cluster id per row, cosine distance of the row to its cluster's final centroid).

    Rows are taken in order; a row joins the most similar centroid when the cosine
    similarity is >= ``threshold``, else it starts a new cluster. Centroids are running
    means (renormalised for the comparison), so the result is deterministic given the order.

    Written by hand because no library streams this exact rule. The search is blockwise
    but the result is the sequential one: ``block`` rows are compared with every centroid
    in one matrix product against the centroids as they stood at the block's start, and
    only the centroids the block itself changed or created are compared again, row by row.
    With many clusters that is one BLAS call per block instead of a matrix-vector product
    per row (30,000 distinct rows: tens of seconds instead of many minutes).
    """
    emb = np.asarray(emb, dtype=np.float32)
    n = emb.shape[0]
    ids = np.zeros(n, dtype=np.int64)
    if n == 0:
        return ids, np.zeros(0, dtype=np.float32)
    dim = emb.shape[1]
    cap = 64
    sums = np.zeros((cap, dim), dtype=np.float32)     # running sums of members
    cents = np.zeros((cap, dim), dtype=np.float32)    # normalised centroids
    k = 0
    for start in range(0, n, max(1, block)):
        rows = emb[start:start + block]
        k0 = k
        stale = rows @ cents[:k0].T if k0 else None   # similarities to the block-start centroids
        touched: list[int] = []                       # centroids changed or created in this block
        seen: set[int] = set()
        for r, v in enumerate(rows):
            i = start + r
            if k:
                sims = np.empty(k, dtype=np.float32)
                if k0:
                    sims[:k0] = stale[r]
                if touched:
                    sims[touched] = cents[touched] @ v
                j = int(np.argmax(sims))
                if sims[j] >= threshold:
                    ids[i] = j
                    sums[j] += v
                    norm = np.linalg.norm(sums[j])
                    cents[j] = sums[j] / norm if norm > 0 else 0.0
                    if j not in seen:
                        touched.append(j)
                        seen.add(j)
                    continue
            if k == cap:
                cap *= 2
                sums = np.vstack([sums, np.zeros_like(sums)])
                cents = np.vstack([cents, np.zeros_like(cents)])
            ids[i] = k
            sums[k] = v
            cents[k] = v
            touched.append(k)
            seen.add(k)
            k += 1
    dist = 1.0 - np.einsum("ij,ij->i", emb, cents[ids])
    return ids, np.clip(dist, 0.0, 2.0).astype(np.float32)
