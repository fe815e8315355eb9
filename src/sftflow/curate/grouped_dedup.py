"""Representative clustering with identical embeddings collapsed first: memory by distinct rows.

Template-heavy pools hold thousands of byte-identical embeddings; N of them are
N(N-1)/2 similar pairs (30,000 -> 450 million), which no pair list survives. Collapsing
them loses nothing, because greedy representative clustering treats a group of
identical rows as one node:

- every member of a group has the same neighbours (outside the group) and is a
  neighbour of every other member, so when the first member u of a group is visited,
  it takes its whole group and the whole of every unassigned neighbouring group;
- so groups are assigned whole, and the member that decides is the group's *leader*:
  its first member in the keep order.

Running ``representative_clusters`` over one row per group, with groups visited in
their leaders' order, and mapping each record to the leader of its group's
representative, gives exactly the clusters of the full pair list, with pairs counted
between distinct rows only. (Identical rows count as similar even at a threshold of
1.0, where float rounding could otherwise split them.)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .clusters import representative_clusters


def identical_groups(emb: np.ndarray) -> np.ndarray:
    """Group id per row; rows with byte-identical embeddings share one."""
    rows = np.ascontiguousarray(emb)
    as_void = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()
    _, inverse = np.unique(as_void, return_inverse=True)
    return inverse.ravel()


def grouped_representatives(emb: np.ndarray, order_of: Callable[[list[int]], list[int]],
                            pairs_of: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, list[int]]:
    """(rep per record, the records in any cluster larger than one).

    ``order_of(members)`` sorts records by the keep policy; ``pairs_of(vectors)`` finds
    the similar pairs among one vector per group (``dedup.similar_pairs``).
    """
    n = emb.shape[0]
    group = identical_groups(emb)
    k = int(group.max()) + 1 if n else 0
    size = np.bincount(group, minlength=k)
    leader = np.full(k, -1, dtype=np.int64)
    for i in order_of([int(i) for i in np.flatnonzero(size[group] > 1)]):
        if leader[group[i]] < 0:
            leader[group[i]] = i
    singles = size[group] == 1
    leader[group[singles]] = np.flatnonzero(singles)
    pairs_g = pairs_of(emb[leader])
    linked_g = np.zeros(k, dtype=bool)
    linked_g[size > 1] = True
    if len(pairs_g):
        linked_g[np.unique(pairs_g)] = True
    linked = order_of([int(i) for i in np.flatnonzero(linked_g[group])])
    rank = {int(g): r for r, g in enumerate(dict.fromkeys(int(group[i]) for i in linked))}
    group_order = sorted(rank, key=rank.__getitem__)
    rep_g = representative_clusters(k, pairs_g, group_order) if len(pairs_g) else np.arange(k)
    rep = leader[rep_g[group]]
    return rep, sorted(linked)
