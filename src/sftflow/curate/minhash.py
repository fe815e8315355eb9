"""Near-duplicate detection on text: word hashing, shingles, MinHash LSH, exact confirmation.

Step by step:

1. Words: lower-cased letter/digit runs (CJK one character at a time), found and
   hashed in numpy over one byte buffer per chunk of texts (a polynomial hash of the
   word's bytes: stable across runs and machines, no Python string per word).
2. Shingles: word n-grams hashed in numpy as a position-weighted sum of the word
   hashes, then mixed; a text shorter than n words is one shingle. Building a Python
   string per shingle is where plain MinHash loops spend most of their time.
3. Signatures: rensa (Rust, both cores) from the flat shingle buffer in one call.
   rensa was chosen by measurement: ~8x datasketch on real T0 prompts.
4. Candidates: rensa's LSH flags the rows that share a band with another row; only
   those are banded again in numpy to list candidate pairs.
5. Confirmation: every candidate pair is checked with the *exact* Jaccard of the two
   shingle sets; nothing is removed on an estimate.
6. Clusters around the records kept (``clusters.representative_clusters``).

Bands and rows default to the (b, r) that minimise 0.1 * false-positive + 0.9 *
false-negative probability mass around the threshold: since every candidate is
confirmed exactly, a false candidate only costs a set intersection, while a miss
leaves a duplicate in the data.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import rensa

from .banding import bucket_pairs  # noqa: F401  (re-exported: the Ray engine bands with it)
from .banding import band_keys, pairs_from_keys, pos_mult
from .clusters import representative_clusters
from .filters import words


# Odd 64-bit multipliers, one per position inside a shingle (so "a b" != "b a").
_POS_MULT = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93,
                      0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, 0x94D049BB133111EB, 0xBF58476D1CE4E5B9], dtype=np.uint64)


def normalize_text(text: str) -> str:
    """Case, whitespace and punctuation folded away: the key of exact dedup."""
    return " ".join(words(text))


# ASCII fast path of normalize_text as bytes: one C-level translate (lower-casing and
# blanking punctuation in the same pass) and one split per text instead of a regex,
# ~3x faster; identical to words() on ASCII text.
_ASCII_FOLD = bytes.maketrans(bytes(range(128)), bytes(
    (ord(chr(c).lower()) if chr(c).isalnum() or c == ord("_") else 32) for c in range(128)))


def normalized_key(text: str) -> bytes:
    """normalize_text(text) as UTF-8 bytes (the dictionary key of exact dedup)."""
    if text.isascii():
        return b" ".join(text.encode().translate(_ASCII_FOLD).split())
    return normalize_text(text).encode()


def _pos_mult(n: int) -> np.ndarray:
    return pos_mult(n, _POS_MULT)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads the bits of the weighted sums."""
    x = x.copy()
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return x


# Bytes that belong to a word: ASCII letters, digits and '_' (after lower-casing), and
# every byte of a multi-byte UTF-8 character. Texts with non-ASCII characters are first
# normalised by ``words()`` (so their only separators left are spaces), which makes this
# one table agree with ``words()`` on every text.
_WORD_BYTE = np.zeros(256, dtype=bool)
for _c in range(256):
    _WORD_BYTE[_c] = _c >= 0x80 or chr(_c).isalnum() or _c == ord("_")
_B = 0x100000001B3                       # odd base of the per-word polynomial hash
_B_INV = pow(_B, -1, 2**64)              # its inverse mod 2^64 (exists because _B is odd)
_CHUNK = 1 << 20                         # bytes hashed per vectorised pass (bounds memory)
_THREADS = min(2, os.cpu_count() or 1)
_POWERS: list[np.ndarray] = []


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """B^k and B^-k mod 2^64 for k < n (computed once, grown when a longer text comes)."""
    if not _POWERS or len(_POWERS[0]) < n:
        with np.errstate(over="ignore"):
            pw = np.full(n, _B, dtype=np.uint64)
            pw[0] = 1
            inv = np.full(n, _B_INV, dtype=np.uint64)
            inv[0] = 1
            _POWERS[:] = [np.cumprod(pw, dtype=np.uint64), np.cumprod(inv, dtype=np.uint64)]
    return _POWERS[0], _POWERS[1]


def _hash_words_chunk(buf: bytes, pw: np.ndarray, inv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(start byte, hash) of every word in ``buf`` - all in numpy, no Python string per word."""
    arr = np.frombuffer(buf, dtype=np.uint8)
    isw = _WORD_BYTE[arr].view(np.int8)
    edges = np.diff(isw, prepend=np.int8(0), append=np.int8(0))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    with np.errstate(over="ignore"):
        # prefix[i] = sum_{k<i} byte[k] * B^k, so a word's hash (H[e] - H[s]) * B^-s is the
        # polynomial hash of its bytes alone, wherever it sits.
        prefix = np.zeros(len(arr) + 1, dtype=np.uint64)
        np.cumsum(arr.astype(np.uint64) * pw[:len(arr)], out=prefix[1:])
        h = (prefix[ends] - prefix[starts]) * inv[starts]
    return starts, _mix64(h)


def word_hashes(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(uint64 hash per word, flat; int64 offsets of each text's words, len n+1).

    Words are exactly ``words(text)``; the hash of a word does not depend on the text
    or run it appears in (stable across machines, unlike Python's ``hash``).
    """
    n = len(texts)
    enc = [t.encode() if t.isascii() else " ".join(words(t)).encode() for t in texts]
    doc_lens = np.fromiter((len(e) + 1 for e in enc), dtype=np.int64, count=n)
    if n == 0:
        return np.zeros(0, dtype=np.uint64), np.zeros(1, dtype=np.int64)
    # Whole texts per chunk of about _CHUNK bytes, so no word is cut.
    cum = np.cumsum(doc_lens)
    cuts = np.searchsorted(cum, np.arange(1, int(cum[-1]) // _CHUNK + 1) * _CHUNK, side="right")
    bounds = [0] + sorted({int(c) for c in cuts if 0 < c < n}) + [n]
    chunks = list(zip(bounds[:-1], bounds[1:]))
    biggest = max(int(cum[j - 1] - (cum[i - 1] if i else 0)) for i, j in chunks)
    pw, inv = _powers(biggest + 1)

    def one(bound: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        i, j = bound
        starts, h = _hash_words_chunk(b"\n".join(enc[i:j]).lower(), pw, inv)
        doc_start = np.zeros(j - i, dtype=np.int64)
        np.cumsum(doc_lens[i:j - 1], out=doc_start[1:])
        return h, np.searchsorted(doc_start, starts, side="right") - 1 + i

    # numpy releases the GIL inside these array passes, so two threads use both cores.
    if len(chunks) > 1 and _THREADS > 1:
        with ThreadPoolExecutor(_THREADS) as pool:
            parts = list(pool.map(one, chunks))
    else:
        parts = [one(c) for c in chunks]
    flat = np.concatenate([h for h, _ in parts])
    owner = np.concatenate([o for _, o in parts])
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(owner, minlength=n), out=offsets[1:])
    return flat, offsets


_BATCH = 16384  # texts per shingling batch: bounds the temporary arrays, not the result


def shingle_hashes(texts: list[str], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Word n-gram hashes per text: (flat uint64, int64 offsets len n_texts+1).

    A text with fewer than n words (but at least one) contributes one shingle made of
    all its words; an empty text contributes none.
    """
    if len(texts) <= _BATCH:
        return _shingle_batch(texts, n)
    flats, counts = [], []
    for i in range(0, len(texts), _BATCH):
        f, o = _shingle_batch(texts[i:i + _BATCH], n)
        flats.append(f)
        counts.append(np.diff(o))
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(np.concatenate(counts), out=offsets[1:])
    return np.concatenate(flats), offsets


def _shingle_batch(texts: list[str], n: int) -> tuple[np.ndarray, np.ndarray]:
    wh, woff = word_hashes(texts)
    total = len(wh)
    lens = np.diff(woff)
    if total == 0:
        return np.zeros(0, dtype=np.uint64), np.zeros(len(texts) + 1, dtype=np.int64)
    mults = _pos_mult(n)
    # Full shingles: sum_k word[p + k] * mult_k over contiguous slices (no fancy indexing);
    # positions whose window runs past their text's end are dropped by ``valid`` below.
    padded = np.concatenate([wh, np.zeros(n, dtype=np.uint64)])
    acc = np.zeros(total, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k, mult in enumerate(mults):
            acc += padded[k:k + total] * mult
        # Texts shorter than n words: one shingle of all their words, at their first position.
        short = np.flatnonzero((lens > 0) & (lens < n))
        if len(short):
            first, slen = woff[short], lens[short]
            sacc = np.zeros(len(short), dtype=np.uint64)
            for k, mult in enumerate(mults[:-1]):
                m = k < slen
                sacc[m] += wh[first[m] + k] * mult
            acc[first] = sacc
    doc_end = np.repeat(woff[1:], lens)
    pos = np.arange(total, dtype=np.int64)
    valid = pos + n <= doc_end
    if len(short):
        valid[woff[short]] = True
    counts = np.where(lens >= n, lens - n + 1, np.minimum(lens, 1))
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return _mix64(acc[valid]), offsets


def choose_bands(threshold: float, num_perm: int, fn_weight: float = 0.9) -> tuple[int, int]:
    """(bands, rows) with bands*rows <= num_perm minimising weighted FP/FN probability mass."""
    x = np.linspace(0.0, 1.0, 1001)
    below, above = x < threshold, x >= threshold
    best = (np.inf, 1, num_perm)
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            p = 1.0 - (1.0 - x ** r) ** b
            fp = np.trapezoid(np.where(below, p, 0.0), x)
            fn = np.trapezoid(np.where(above, 1.0 - p, 0.0), x)
            err = (1 - fn_weight) * fp + fn_weight * fn
            if err < best[0]:
                best = (err, b, r)
    return best[1], best[2]


choose_bands = lru_cache(maxsize=64)(choose_bands)


def _band_pairs(sig: np.ndarray, bands: int, rows: int, max_group: int = 32) -> np.ndarray:
    """Candidate pairs (i < j) of rows sharing any band, as an (m, 2) int64 array (``bucket_pairs``)."""
    return pairs_from_keys(band_keys(sig, bands, rows, _pos_mult(rows)), max_group)


def minhash_candidates(flat: np.ndarray, offsets: np.ndarray, *, num_perm: int, bands: int, rows: int,
                       seed: int = 0) -> np.ndarray:
    """Candidate pairs (indices into the texts) from MinHash LSH on shingle hashes."""
    nonempty = np.flatnonzero(np.diff(offsets) > 0)  # an empty set is nobody's duplicate
    if len(nonempty) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    perm = bands * rows
    lens = np.diff(offsets)[nonempty]
    sub_flat, sub_off = _gather(flat, offsets, nonempty, lens)
    mat = rensa.RMinHash.digest_matrix_from_flat_token_hashes(sub_flat, sub_off.astype(np.uint64), perm, seed)
    # One-shot band flags in Rust (the index's own threshold plays no part in flagging).
    flags = np.asarray(rensa.RMinHashLSH(0.5, perm, bands).query_duplicate_flags_matrix_one_shot(mat),
                       dtype=bool)
    if not flags.any():
        return np.zeros((0, 2), dtype=np.int64)
    # Only flagged rows can be in a pair: digest them again (cheap) and band in numpy.
    idx = nonempty[flags]
    sig = np.empty((len(idx), perm), dtype=np.uint32)
    for s in range(0, len(idx), _BATCH):  # batches bound the Python lists that to_rows() builds
        part = idx[s:s + _BATCH]
        f_flat, f_off = _gather(flat, offsets, part, np.diff(offsets)[part])
        fmat = rensa.RMinHash.digest_matrix_from_flat_token_hashes(f_flat, f_off.astype(np.uint64), perm, seed)
        sig[s:s + len(part)] = np.array(fmat.to_rows(), dtype=np.uint32)
    local = _band_pairs(sig, bands, rows)
    return idx[local] if len(local) else local


def _gather(flat: np.ndarray, offsets: np.ndarray, idx: np.ndarray, lens: np.ndarray):
    new_off = np.zeros(len(idx) + 1, dtype=np.int64)
    np.cumsum(lens, out=new_off[1:])
    if len(idx) == len(offsets) - 1:
        return flat, new_off
    take = np.repeat(offsets[idx] - new_off[:-1], lens) + np.arange(new_off[-1], dtype=np.int64)
    return flat[take], new_off


def _ranges(starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Concatenated index ranges [s, s + l) for each (s, l), built without a Python loop."""
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    base = np.repeat(starts - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens)
    return base + np.arange(total, dtype=np.int64)


def jaccard_many(flat: np.ndarray, offsets: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Exact Jaccard of the shingle *sets* of every pair (i, j), vectorised.

    Each text's shingles are made unique once; then for all pairs at the same time the
    two sets are laid side by side, tagged with the pair, and sorted: a value that
    appears twice under one tag is in the intersection. One sort instead of one Python
    set intersection per pair (the confirmation step is then a small share of the run).
    """
    if len(pairs) == 0:
        return np.zeros(0)
    docs, local = np.unique(pairs, return_inverse=True)
    local = local.reshape(pairs.shape)
    lens = np.diff(offsets)[docs]
    vals = flat[_ranges(offsets[docs], lens)]
    # Dense ranks make (owner, value) and (pair, value) fit in one int64 sort key.
    # (Explicit sorts: numpy's hash-based unique is several times slower on these sizes.)
    order = np.argsort(vals, kind="stable")
    sv = vals[order]
    new_val = np.ones(len(sv), dtype=bool)
    new_val[1:] = sv[1:] != sv[:-1]
    rank = np.empty(len(vals), dtype=np.int64)
    rank[order] = np.cumsum(new_val) - 1
    r = max(int(new_val.sum()), 1)
    owner = np.repeat(np.arange(len(docs), dtype=np.int64), lens)
    key = np.sort(owner * r + rank)
    if len(key):
        key = key[np.concatenate([[True], key[1:] != key[:-1]])]   # each text's shingles once
    owner_u, rank_u = key // r, key % r
    size = np.bincount(owner_u, minlength=len(docs))
    uoff = np.concatenate([[0], np.cumsum(size)])
    a, b = local[:, 0], local[:, 1]
    sa, sb = size[a], size[b]
    idx = np.arange(len(pairs), dtype=np.int64)
    tag = np.concatenate([np.repeat(idx, sa), np.repeat(idx, sb)])
    both = np.concatenate([rank_u[_ranges(uoff[a], sa)], rank_u[_ranges(uoff[b], sb)]])
    key = np.sort(tag * r + both)
    same = key[1:] == key[:-1]
    inter = np.bincount(key[1:][same] // r, minlength=len(pairs)).astype(np.float64)
    union = sa + sb - inter
    return np.divide(inter, union, out=np.zeros(len(pairs)), where=union > 0)


def confirm_pairs(pairs: np.ndarray, flat: np.ndarray, offsets: np.ndarray,
                  threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Keep the candidate pairs whose exact Jaccard reaches ``threshold``: (pairs, jaccards)."""
    if len(pairs) == 0:
        return pairs, np.zeros(0)
    jac = jaccard_many(flat, offsets, pairs)
    ok = jac >= threshold
    return pairs[ok], jac[ok]


@dataclass
class NearDupResult:
    pairs: np.ndarray       # confirmed pairs (i < j)
    jaccard: np.ndarray     # their exact Jaccard
    candidates: int         # candidate pairs before confirmation
    labels: np.ndarray      # per row: the record a keep-first dedup keeps for it (itself when kept)


def near_duplicates(texts: list[str], *, ngram: int = 5, num_perm: int = 128, threshold: float = 0.7,
                    bands: int | None = None, rows: int | None = None, seed: int = 0) -> NearDupResult:
    """Find near-duplicate pairs among ``texts``: MinHash LSH candidates, exact-Jaccard confirmed."""
    if bands is None:
        bands, rows = choose_bands(threshold, num_perm)
    flat, off = shingle_hashes(texts, ngram)
    cand = minhash_candidates(flat, off, num_perm=num_perm, bands=bands, rows=rows, seed=seed)
    pairs, jac = confirm_pairs(cand, flat, off, threshold)
    return NearDupResult(pairs, jac, len(cand), representative_clusters(len(texts), pairs))
