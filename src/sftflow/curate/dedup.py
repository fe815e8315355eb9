"""The dedup steps: exact (normalised text), near (MinHash LSH) and semantic (embeddings).

Near-duplicate detection itself (hashing, banding, exact Jaccard confirmation, clusters)
is in ``minhash``; this module orders records by a named keep policy, clusters them
around representatives in that order (``minhash.representative_clusters``: a record is
removed only for a kept record it is itself similar to), rejects the rest naming the
record kept, and writes each record's cluster to its metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..embed import embed_texts, example_text
from ..schema import Example
from .clusters import representative_clusters
from .config import ExactDedupParams, NearDedupParams, SemanticDedupParams
from .grouped_dedup import grouped_representatives
from .minhash import (choose_bands, confirm_pairs, jaccard_many, minhash_candidates, normalized_key,
                      shingle_hashes)
from .steps import Step, StepResult, measurements, reject


def _get_path(meta: dict[str, Any], key: str) -> Any:
    node: Any = meta
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def keep_order(members: list[int], examples: list[Example], policy: str,
               score_key: str | None = None) -> list[int]:
    """``members`` from the one a cluster would rather keep to the least: first, longest
    response, or highest score (ties by position)."""
    return policy_order(members, policy, lambda i: len(examples[i].response),
                        lambda i: _get_path(examples[i].metadata, score_key or ""),
                        lambda i: examples[i].id, score_key)


def policy_order(members: list[int], policy: str, response_len: Callable[[int], int],
                 score: Callable[[int], Any], record_id: Callable[[int], str],
                 score_key: str | None = None) -> list[int]:
    """``keep_order`` over accessors, so a streaming run can order records it no longer holds."""
    if policy == "first":
        return sorted(members)
    if policy == "longest_response":
        return sorted(members, key=lambda i: (-response_len(i), i))
    if policy == "highest_score":
        scores = {}
        for i in members:
            v = score(i)
            if not isinstance(v, (int, float)):
                raise ValueError(f"keep=highest_score: record {record_id(i)} has no numeric "
                                 f"metadata '{score_key}' (got {v!r}); score the data first")
            scores[i] = float(v)
        return sorted(members, key=lambda i: (-scores[i], i))
    raise ValueError(f"unknown keep policy {policy!r}")


@dataclass
class Clusters:
    """Where every record of a dedup step went: ``rep[i]`` is the record it is a duplicate
    of (itself when kept), ``linked`` the records in a cluster larger than one, ``drop``
    maps a removed record to (its representative, their similarity)."""
    rep: np.ndarray
    linked: list[int]
    sizes: np.ndarray
    drop: dict[int, tuple[int, float]]


def cluster_decisions(n: int, pairs: np.ndarray | None, order_of: Callable[[list[int]], list[int]],
                      similarity: Callable[[np.ndarray], np.ndarray],
                      grouped: tuple[np.ndarray, list[int]] | None = None) -> Clusters:
    """Representatives in keep order, and each removed record's similarity to its own."""
    if grouped is not None:
        rep, linked = grouped
    else:
        linked = np.unique(pairs).tolist() if len(pairs) else []
        rep = representative_clusters(n, pairs, order_of(linked))
    sizes = np.bincount(rep, minlength=n)
    dropped = np.array([(i, int(rep[i])) for i in linked if rep[i] != i], dtype=np.int64).reshape(-1, 2)
    sims = similarity(dropped) if len(dropped) else []
    drop = {int(i): (int(r), round(float(v), 4)) for (i, r), v in zip(dropped, sims)}
    return Clusters(rep, linked, sizes, drop)


def duplicate_reason(describe: str, kept_id: str, sim: float, policy: str) -> str:
    return f"{describe} of {kept_id} (similarity {sim:.3f}; kept by policy '{policy}')"


def resolve_clusters(step: str, examples: list[Example], pairs: np.ndarray | None, policy: str,
                     score_key: str | None, similarity: Callable[[np.ndarray], np.ndarray],
                     describe: str, grouped: tuple[np.ndarray, list[int]] | None = None) -> StepResult:
    """Cluster around representatives chosen by the keep policy; write cluster ids; reject the
    rest naming the record kept and their similarity to it (always at or above the bar).

    ``pairs`` are the confirmed similar pairs; ``similarity(pairs)`` gives the similarity
    of each (member, representative) pair. ``grouped`` (rep per record, linked records)
    replaces ``pairs`` where identical rows were collapsed first (``grouped_dedup``).
    """
    c = cluster_decisions(len(examples), pairs, lambda m: keep_order(m, examples, policy, score_key),
                          similarity, grouped)
    for i in c.linked:
        m = measurements(examples[i], step)
        m["cluster"] = examples[int(c.rep[i])].id
        m["cluster_size"] = int(c.sizes[c.rep[i]])
    out = StepResult(kept=[])
    for i, ex in enumerate(examples):
        if i not in c.drop:
            out.kept.append(ex)
            continue
        r, sim = c.drop[i]
        out.rejected.append(reject(ex, step, duplicate_reason(describe, examples[r].id, sim, policy),
                                   {"duplicate_of": examples[r].id, "similarity": sim}))
    return out


def texts_of(examples: list[Example], field: str) -> list[str]:
    """example_text for many records, with a shortcut for the common single exchange."""
    if field != "prompt":
        return [example_text(ex, field) for ex in examples]
    out = []
    for ex in examples:
        m = ex.messages
        # [user, assistant]: the prompt is the user turn (what Example.prompt finds, cheaper).
        out.append(m[0]["content"] if len(m) == 2 and m[0]["role"] == "user" else ex.prompt)
    return out


class ExactDedup(Step):
    """Drop records whose normalised text (case, whitespace, punctuation folded) was seen before."""

    name = "exact_dedup"

    def __init__(self, params: ExactDedupParams | None = None):
        self.p = params or ExactDedupParams()

    def run(self, examples: list[Example]) -> StepResult:
        field = self.p.field
        first: dict[bytes, int] = {}
        out = StepResult(kept=[])
        for i, text in enumerate(texts_of(examples, field)):
            f = first.setdefault(normalized_key(text), i)   # one lookup per record
            if f == i:
                out.kept.append(examples[i])
            else:
                orig = examples[f].id
                out.rejected.append(reject(examples[i], self.name, self.describe(orig), {"duplicate_of": orig}))
        return out

    def describe(self, orig: str) -> str:
        return f"exact duplicate ({self.p.field}, normalised) of {orig}"


class NearDedup(Step):
    name = "near_dedup"

    def __init__(self, params: NearDedupParams | None = None):
        self.p = params or NearDedupParams()

    def run(self, examples: list[Example]) -> StepResult:
        p = self.p
        if len(examples) < 2:
            return StepResult(kept=list(examples))
        texts = texts_of(examples, p.field)
        bands, rows = (p.bands, p.rows) if p.bands else choose_bands(p.threshold, p.num_perm)
        flat, off = shingle_hashes(texts, p.ngram)
        cand = minhash_candidates(flat, off, num_perm=p.num_perm, bands=bands, rows=rows, seed=p.seed)
        pairs, _ = confirm_pairs(cand, flat, off, p.threshold)
        return resolve_clusters(self.name, examples, pairs, p.keep, p.score_key,
                                lambda prs: jaccard_many(flat, off, prs), self.describe())

    def describe(self) -> str:
        return f"near duplicate (word {self.p.ngram}-gram Jaccard >= {self.p.threshold})"


def similar_pairs(emb: np.ndarray, threshold: float, block_size: int = 1024) -> np.ndarray:
    """Pairs (i < j) with cosine >= threshold, blockwise: memory O(block x N), never N x N."""
    n = emb.shape[0]
    # Cap a block at ~50M similarities (200 MB of float32) whatever N is.
    block = max(1, min(block_size, 50_000_000 // max(n, 1)))
    out = []
    for s in range(0, n, block):
        e = min(n, s + block)
        sims = emb[s:e] @ emb[s:].T  # only j >= s: the lower triangle was seen already
        i, j = np.nonzero(sims >= threshold)
        j = j + s
        i = i + s
        keep = j > i
        if keep.any():
            out.append(np.stack([i[keep], j[keep]], axis=1))
    return np.concatenate(out).astype(np.int64) if out else np.zeros((0, 2), dtype=np.int64)


class SemanticDedup(Step):
    name = "semantic_dedup"

    def __init__(self, params: SemanticDedupParams | None = None, embeddings: Any = None):
        self.p = params or SemanticDedupParams()
        self._emb_fn = embeddings

    def run(self, examples: list[Example]) -> StepResult:
        p = self.p
        if len(examples) < 2:
            return StepResult(kept=list(examples))
        emb = self.embed([example_text(ex, p.field) for ex in examples])
        # Identical embeddings (template-heavy data) collapsed before the pair search: pairs
        # among distinct rows only, the same clusters (see grouped_dedup).
        grouped = grouped_representatives(emb, lambda m: keep_order(m, examples, p.keep, p.score_key),
                                          lambda v: similar_pairs(v, p.threshold, p.block_size))
        return resolve_clusters(self.name, examples, None, p.keep, p.score_key, cosine_of(emb),
                                self.describe(), grouped=grouped)

    def embed(self, texts: list[str]) -> np.ndarray:
        p = self.p
        if self._emb_fn is not None:
            return np.asarray(self._emb_fn(texts, method=p.method, model=p.model))
        return np.asarray(embed_texts(texts, p.model, method=p.method, batch_size=p.batch_size))

    def describe(self) -> str:
        return f"semantic duplicate ({self.p.method} cosine >= {self.p.threshold})"


def cosine_of(emb: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Similarity of (member, representative) pairs of unit vectors."""
    return lambda prs: np.einsum("ij,ij->i", emb[prs[:, 0]], emb[prs[:, 1]])
