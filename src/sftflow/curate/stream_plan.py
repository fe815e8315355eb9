"""The decisions of a streaming curate run, made from pass 1's columns alone.

Steps are replayed in order over the records still in (``removed == NONE``), exactly as
``run_steps`` would run them over whole Examples:

- a filter removes the records it rejected on their own evidence (``fail == k``), plus,
  for truncation, the open candidates whose source closes enough of its answers (the
  share is counted over the records that reach the step, as in the one-shot run); then
  every other member of a group that lost a member, quoting the first one removed;
- exact dedup keeps the first record of every digest among those still in;
- near dedup bands the stored keys, rebuilds shingles for the records in a candidate
  pair only (``texts_at`` reads them again) and confirms by exact Jaccard;
- semantic dedup reads the texts of the records still in, embeds them once (float32
  rows, through the same cache) and clusters as the one-shot step does.

Clusters are formed around representatives in keep-policy order with the functions the
one-shot steps use (``dedup.cluster_decisions``), so both runs remove the same records
for the same reasons.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .banding import pairs_from_keys
from .dedup import (Clusters, ExactDedup, NearDedup, SemanticDedup, cluster_decisions, cosine_of,
                    policy_order, similar_pairs, texts_of)
from .grouped_dedup import grouped_representatives
from .minhash import confirm_pairs, jaccard_many, shingle_hashes
from .steps import Filter, Step
from .stream_scan import NONE, ScanState
from .truncation import TruncationFilter

TextsAt = Callable[[np.ndarray, Callable[[Any], str]], list[str]]


@dataclass
class Plan:
    removed: np.ndarray                      # per record: position of the step that removes it, NONE = kept
    by_group: np.ndarray                     # removed as another member's group, not on its own evidence
    group_reason: dict[tuple[int, int], str] = field(default_factory=dict)   # (step, group code) -> why
    dup: dict[int, int] = field(default_factory=dict)                        # record -> record kept for it
    similarity: dict[int, float] = field(default_factory=dict)
    clusters: dict[int, dict[int, tuple[int, int]]] = field(default_factory=dict)  # step -> rec -> (rep, size)
    funnel: list[dict[str, Any]] = field(default_factory=list)


def plan_steps(state: ScanState, steps: list[Step], texts_at: TextsAt) -> Plan:
    """Which step removes each record, why, and the clusters dedup wrote."""
    n = state.n
    plan = Plan(removed=np.full(n, NONE, dtype=np.int16), by_group=np.zeros(n, dtype=bool))
    for k, step in enumerate(steps):
        t0 = time.perf_counter()
        surv = np.flatnonzero(plan.removed == NONE)
        flagged = 0
        if isinstance(step, Filter):
            flagged = _filter(plan, state, k, step, surv)
        elif isinstance(step, ExactDedup):
            _exact(plan, state, k, surv)
        elif isinstance(step, NearDedup):
            _near(plan, state, k, step, surv, texts_at)
        elif isinstance(step, SemanticDedup):
            _semantic(plan, state, k, step, surv, texts_at)
        else:  # pragma: no cover - streaming() checks the steps first
            raise TypeError(f"step {step.name} cannot run on a stream")
        out = int((plan.removed[surv] == NONE).sum())
        plan.funnel.append({"step": step.name, "in": len(surv), "out": out, "rejected": len(surv) - out,
                            "flagged": flagged, "seconds": round(time.perf_counter() - t0, 3)})
    return plan


def convention_fails(state: ScanState, step: TruncationFilter, surv: np.ndarray) -> np.ndarray:
    """Set the step's per-source shares from the records that reach it; the open candidates
    they now reject (a mask over ``surv``)."""
    vote, src = state.cols["vote"][surv], state.cols["source"][surv]
    counted = vote > 0
    total = np.bincount(src[counted], minlength=len(state.source_names))
    closed = np.bincount(src[counted & (vote == 2)], minlength=len(state.source_names))
    step.use_counts({state.source_names[c]: [int(closed[c]), int(total[c])] for c in np.flatnonzero(total)})
    share = step._closed_share
    ok = np.array([share.get(s) is not None and share[s] >= step.p.convention_share
                   for s in state.source_names], dtype=bool)
    return state.cols["conv"][surv] & ok[src] if len(ok) else np.zeros(len(surv), dtype=bool)


def _filter(plan: Plan, state: ScanState, k: int, step: Filter, surv: np.ndarray) -> int:
    own = state.cols["fail"][surv] == k
    conv = np.zeros(len(surv), dtype=bool)
    if isinstance(step, TruncationFilter):
        conv = convention_fails(state, step, surv)
        own |= conv
    direct = surv[own]
    groups = state.cols["group"]
    failed: dict[int, str] = {}
    for i, is_conv in zip(direct.tolist(), conv[own].tolist()):
        g = int(groups[i])
        if g < 0 or g in failed:
            continue
        if is_conv:
            why = step.reason("convention", state.tails[i], state.source_names[state.cols["source"][i]])
        else:
            why = state.reasons[i]
        failed[g] = f"member {state.ids[i]} rejected: {why}"
    plan.removed[direct] = k
    if failed:
        rest = surv[~own]
        members = rest[np.isin(groups[rest], np.fromiter(failed, dtype=np.int32))]
        plan.removed[members] = k
        plan.by_group[members] = True
        for g, why in failed.items():
            plan.group_reason[(k, g)] = why
    kept = surv[plan.removed[surv] == NONE]
    return int(((state.cols["flagged"][kept] >> np.uint32(k)) & np.uint32(1)).sum())


def _exact(plan: Plan, state: ScanState, k: int, surv: np.ndarray) -> None:
    if not len(surv):
        return
    keys = state.cols[f"exact{k}"][surv]
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    firsts = surv[first[inverse.ravel()]]
    for i, f in zip(surv[firsts != surv].tolist(), firsts[firsts != surv].tolist()):
        plan.dup[i] = f
    plan.removed[surv[firsts != surv]] = k


def _order_of(state: ScanState, k: int, step: Step) -> Callable[[list[int]], list[int]]:
    p = step.p
    resp_len = state.cols["resp_len"]
    return lambda members: policy_order(members, p.keep, lambda i: int(resp_len[i]), lambda i: state.score(k, i),
                                        state.ids.__getitem__, p.score_key)


def _record(plan: Plan, k: int, c: Clusters, to_global: np.ndarray | None = None) -> None:
    """Write a step's clusters and removals into the plan (``to_global`` maps local rows)."""
    g = (lambda i: int(i)) if to_global is None else (lambda i: int(to_global[i]))
    plan.clusters[k] = {g(i): (g(c.rep[i]), int(c.sizes[c.rep[i]])) for i in c.linked}
    for i, (r, sim) in c.drop.items():
        plan.dup[g(i)] = g(r)
        plan.similarity[g(i)] = sim
        plan.removed[g(i)] = k


def _near(plan: Plan, state: ScanState, k: int, step: NearDedup, surv: np.ndarray, texts_at: TextsAt) -> None:
    if len(surv) < 2:
        return
    p = step.p
    sub = surv[state.cols[f"nonempty{k}"][surv]]
    cand = sub[pairs_from_keys(state.cols[f"near{k}"], rows=sub)] if len(sub) >= 2 else np.zeros((0, 2), np.int64)
    needed = np.unique(cand)
    flat, off = (shingle_hashes(texts_at(needed, lambda ex: texts_of([ex], p.field)[0]), p.ngram)
                 if len(needed) else (None, None))
    pairs = np.zeros((0, 2), dtype=np.int64)
    if len(cand):
        local, _ = confirm_pairs(np.searchsorted(needed, cand), flat, off, p.threshold)
        pairs = needed[local]
    c = cluster_decisions(state.n, pairs, _order_of(state, k, step),
                          lambda prs: jaccard_many(flat, off, np.searchsorted(needed, prs)))
    _record(plan, k, c)


def _semantic(plan: Plan, state: ScanState, k: int, step: SemanticDedup, surv: np.ndarray,
              texts_at: TextsAt) -> None:
    if len(surv) < 2:
        return
    from ..embed import example_text
    p = step.p
    emb = step.embed(texts_at(surv, lambda ex: example_text(ex, p.field)))
    order_global = _order_of(state, k, step)

    def order_local(members: list[int]) -> list[int]:
        return np.searchsorted(surv, order_global(surv[members].tolist())).tolist() if members else []

    grouped = grouped_representatives(emb, order_local, lambda v: similar_pairs(v, p.threshold, p.block_size))
    c = cluster_decisions(len(surv), None, order_local, cosine_of(emb), grouped)
    _record(plan, k, c, to_global=surv)
