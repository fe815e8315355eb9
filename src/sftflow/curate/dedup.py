"""The dedup steps: exact (normalised text), near (MinHash LSH) and semantic (embeddings).

Near-duplicate detection itself (hashing, banding, exact Jaccard confirmation, clusters)
is in ``minhash``; this module keeps one representative per cluster by a named keep
policy, rejects the rest naming it, and writes each record's cluster to its metadata.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..embed import embed_texts, example_text
from ..schema import Example
from .config import ExactDedupParams, NearDedupParams, SemanticDedupParams
from .minhash import (choose_bands, components, confirm_pairs, jaccard_many, minhash_candidates,
                      normalized_key, shingle_hashes)
from .steps import Step, StepResult, measurements, reject


def _get_path(meta: dict[str, Any], key: str) -> Any:
    node: Any = meta
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def pick_representative(members: list[int], examples: list[Example], policy: str,
                        score_key: str | None = None) -> int:
    """Index of the member a cluster keeps: first, longest response, or highest score."""
    if policy == "first":
        return min(members)
    if policy == "longest_response":
        return min(members, key=lambda i: (-len(examples[i].response), i))
    if policy == "highest_score":
        scores = {}
        for i in members:
            v = _get_path(examples[i].metadata, score_key or "")
            if not isinstance(v, (int, float)):
                raise ValueError(f"keep=highest_score: record {examples[i].id} has no numeric "
                                 f"metadata '{score_key}' (got {v!r}); score the data first")
            scores[i] = float(v)
        return min(members, key=lambda i: (-scores[i], i))
    raise ValueError(f"unknown keep policy {policy!r}")


def resolve_clusters(step: str, examples: list[Example], labels: np.ndarray, policy: str,
                     score_key: str | None, similarity: Callable[[np.ndarray], np.ndarray],
                     describe: str, threshold: float | None = None) -> StepResult:
    """Keep one representative per cluster; write cluster ids; reject the rest with the reason.

    ``similarity(pairs)`` gives the similarity of each (member, representative) pair,
    which goes into the rejected record's value.
    """
    sizes = np.bincount(labels)
    in_cluster = np.flatnonzero(sizes[labels] > 1)
    groups: dict[int, list[int]] = {}
    for i in in_cluster.tolist():
        groups.setdefault(int(labels[i]), []).append(i)
    dropped: list[tuple[int, int]] = []
    for members in groups.values():
        rep = pick_representative(members, examples, policy, score_key)
        rep_id = examples[rep].id
        for i in members:
            m = measurements(examples[i], step)
            m["cluster"] = rep_id
            m["cluster_size"] = len(members)
            if i != rep:
                dropped.append((i, rep))
    sims = similarity(np.array(dropped, dtype=np.int64).reshape(-1, 2)) if dropped else []
    drop = {i: (rep, round(float(v), 4)) for (i, rep), v in zip(dropped, sims)}
    out = StepResult(kept=[])
    for i, ex in enumerate(examples):
        if i not in drop:
            out.kept.append(ex)
            continue
        rep, sim = drop[i]
        # Clusters are connected components, so a member can be linked to the kept record
        # only through other members; say so rather than print a similarity below the bar.
        via = "" if threshold is None or sim >= threshold else "; linked through other cluster members"
        out.rejected.append(reject(ex, step, f"{describe} of {examples[rep].id} "
                                             f"(similarity {sim:.3f}{via}; kept by policy '{policy}')",
                                   {"duplicate_of": examples[rep].id, "similarity": sim}))
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
                out.rejected.append(reject(examples[i], self.name,
                                           f"exact duplicate ({field}, normalised) of {orig}",
                                           {"duplicate_of": orig}))
        return out


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
        labels = components(len(examples), pairs)
        return resolve_clusters(self.name, examples, labels, p.keep, p.score_key,
                                lambda prs: jaccard_many(flat, off, prs),
                                f"near duplicate (word {p.ngram}-gram Jaccard >= {p.threshold})",
                                threshold=p.threshold)


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
        texts = [example_text(ex, p.field) for ex in examples]
        if self._emb_fn is not None:
            emb = self._emb_fn(texts, method=p.method, model=p.model)
        else:
            emb = embed_texts(texts, p.model, method=p.method, batch_size=p.batch_size)
        pairs = similar_pairs(emb, p.threshold, p.block_size)
        labels = components(len(examples), pairs)
        return resolve_clusters(self.name, examples, labels, p.keep, p.score_key,
                                lambda prs: np.einsum("ij,ij->i", emb[prs[:, 0]], emb[prs[:, 1]]),
                                f"semantic duplicate ({p.method} cosine >= {p.threshold})",
                                threshold=p.threshold)
