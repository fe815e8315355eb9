"""LSH banding on MinHash signatures: one band key per (row, band), and the candidate
pairs of rows that share a key.

A band's key is a position-weighted sum of its ``rows`` signature values mod 2^64, so
two rows share a key exactly when their band slices are equal (up to a 2^-64 chance;
every candidate is confirmed by exact Jaccard anyway). Keys are what a streaming run
keeps per record: ``bands`` x 8 bytes instead of the record's shingles or signature.
"""

from __future__ import annotations

import numpy as np
import rensa

_BATCH = 16384  # rows digested per call: bounds the Python lists that to_rows() builds


def pos_mult(n: int, base: np.ndarray) -> np.ndarray:
    if n <= len(base):
        return base[:n]
    rng = np.random.default_rng(12345)
    extra = rng.integers(1, 2**63, n - len(base), dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    return np.concatenate([base, extra])


def band_keys(sig: np.ndarray, bands: int, rows: int, mult: np.ndarray) -> np.ndarray:
    """(n, bands) uint64: the key of every band of every signature row."""
    sig64 = sig.astype(np.uint64)
    keys = np.empty((sig.shape[0], bands), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for b in range(bands):
            keys[:, b] = (sig64[:, b * rows:(b + 1) * rows] * mult).sum(axis=1, dtype=np.uint64)
    return keys


def signatures(flat: np.ndarray, offsets: np.ndarray, perm: int, seed: int) -> np.ndarray:
    """(n, perm) uint32 MinHash signatures of the shingle sets ``flat[offsets[i]:offsets[i+1]]``
    (every set must be non-empty)."""
    n = len(offsets) - 1
    sig = np.empty((n, perm), dtype=np.uint32)
    for s in range(0, n, _BATCH):
        e = min(n, s + _BATCH)
        f_off = offsets[s:e + 1] - offsets[s]
        mat = rensa.RMinHash.digest_matrix_from_flat_token_hashes(
            flat[offsets[s]:offsets[e]], f_off.astype(np.uint64), perm, seed)
        sig[s:e] = np.array(mat.to_rows(), dtype=np.uint32)
    return sig


def bucket_pairs(members: np.ndarray, max_group: int) -> list[np.ndarray]:
    """Candidate pairs of one LSH bucket (``members`` sorted), as (m, 2) arrays.

    A bucket of k rows yields all k(k-1)/2 pairs when k <= max_group; a larger bucket
    (a template stamped on thousands of rows) yields a star on its first row plus a
    chain, which keeps the cluster connected after confirmation without k^2 pairs.
    The Ray engine bands with this same rule, so both find the same candidates.
    """
    if len(members) <= max_group:
        i, j = np.triu_indices(len(members), k=1)
        return [np.stack([members[i], members[j]], axis=1)]
    return [np.stack([np.full(len(members) - 1, members[0]), members[1:]], axis=1),
            np.stack([members[:-1], members[1:]], axis=1)]


def pairs_from_keys(keys: np.ndarray, max_group: int = 32, rows: np.ndarray | None = None) -> np.ndarray:
    """Candidate pairs (i < j) of rows sharing any band key, as a sorted unique (m, 2) int64
    array; rows are the indices into ``keys``, or into ``rows`` when given (only those rows
    of ``keys`` take part: one band's column is copied at a time, not the whole matrix)."""
    n = keys.shape[0] if rows is None else len(rows)
    out: list[np.ndarray] = []
    for b in range(keys.shape[1]):
        key = keys[:, b] if rows is None else keys[rows, b]
        order = np.argsort(key, kind="stable")
        sk = key[order]
        bounds = np.flatnonzero(np.diff(sk)) + 1
        starts = np.concatenate([[0], bounds]).astype(np.int64)
        ends = np.concatenate([bounds, [n]]).astype(np.int64)
        sizes = ends - starts
        two = sizes == 2
        if two.any():
            out.append(np.stack([order[starts[two]], order[starts[two] + 1]], axis=1))
        for s, e in zip(starts[sizes > 2], ends[sizes > 2]):
            out.extend(bucket_pairs(np.sort(order[s:e]), max_group))
    if not out:
        return np.zeros((0, 2), dtype=np.int64)
    pairs = np.concatenate(out).astype(np.int64)
    pairs.sort(axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    return np.unique(pairs, axis=0)
