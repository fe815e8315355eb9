"""Clusters from confirmed duplicate pairs: components, and clusters around kept records.

Shared by near dedup (MinHash pairs), semantic dedup (embedding pairs), grouped dedup
and the Ray engine, so every path removes a record for the same reason.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


def components(n: int, pairs: np.ndarray) -> np.ndarray:
    """Connected-component label per row (rows without pairs are their own component)."""
    if len(pairs) == 0:
        return np.arange(n)
    g = coo_matrix((np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(g, directed=False)[1]


def representative_clusters(n: int, pairs: np.ndarray, order: list[int] | np.ndarray | None = None) -> np.ndarray:
    """``rep[i]``: the record that row i is a duplicate of, or i itself when it is kept.

    Greedy clustering around representatives, not connected components: components
    would put A, B and C in one cluster for a chain A~B~C and drop C although C is not
    similar enough to A, the record kept. Here records are visited in ``order`` (the keep
    policy's preference, best first; index order by default); an unassigned record
    becomes a representative and takes every unassigned record it is directly paired
    with. So every removed record reaches the threshold with the record it is removed
    for, and no two representatives are a confirmed pair.
    """
    rep = np.arange(n)
    if len(pairs) == 0:
        return rep
    sym = np.concatenate([pairs, pairs[:, ::-1]])
    g = coo_matrix((np.ones(len(sym), dtype=np.int8), (sym[:, 0], sym[:, 1])), shape=(n, n)).tocsr()
    indptr, nbrs = g.indptr, g.indices
    linked = np.flatnonzero(np.diff(indptr))
    assigned = np.zeros(n, dtype=bool)
    visit = linked if order is None else [i for i in order if indptr[i + 1] > indptr[i]]
    for u in visit:
        if assigned[u]:
            continue
        assigned[u] = True
        for v in nbrs[indptr[u]:indptr[u + 1]]:
            if not assigned[v]:
                assigned[v] = True
                rep[v] = u
    return rep
