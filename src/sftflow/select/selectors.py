"""Choose a subset from stored scores: top-k, rules, k-center, score-first diversity, quotas.

Selectors only read ``metadata["scores"]`` (and the embeddings); they never compute a
score. Every record leaves with ``metadata["selection"]`` saying whether it was kept,
and which rule, rank or distance decided it, so ``selected + not_selected == input``
and every decision can be audited.

Order of decisions:
1. ``rule`` (optional) filters: a record for which it is false is out.
2. A record without the ranking score (flagged, not measured) cannot be ranked: out.
3. Quotas (optional) split the budget between groups (task type, source): small groups
   keep everything, the rest is shared evenly (water-filling), so a long tail is not
   drowned by the largest source.
4. The method picks within each group: ``topk`` by score, ``rule`` in input order,
   ``kcenter`` (coverage of the embedding space), or ``diverse`` (DEITA-style: walk
   down the score, skip a record within ``min_distance`` of one already kept).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..diversity import k_center_greedy
from ..schema import Example
from .config import SelectionConfig
from .rules import parse_rule, score_column


@dataclass
class SelectionResult:
    selected: list[Example]
    not_selected: list[Example]
    summary: dict[str, Any] = field(default_factory=dict)


def resolve_budget(budget: int | float | None, n: int) -> int | None:
    if budget is None:
        return None
    if budget < 1:
        return max(1, math.floor(budget * n + 1e-9))   # a fraction of the input
    return int(budget)


def group_of(ex: Example, by: str) -> str:
    """Value of a dotted metadata path (``task``, ``source.name``); '(none)' when absent."""
    node: Any = ex.metadata
    for part in by.split("."):
        if not isinstance(node, dict) or part not in node:
            return "(none)"
        node = node[part]
    return str(node)


def allocate(sizes: dict[str, int], budget: int | None, max_per_group: int | None = None,
             balanced: bool = True) -> dict[str, int]:
    """Per-group budgets. Balanced: equal shares, groups smaller than a share keep all and
    their leftover is shared by the rest (ties in the remainder go to groups in name order)."""
    caps = {g: min(n, max_per_group) if max_per_group else n for g, n in sizes.items()}
    if budget is None:
        return caps
    if not balanced:
        # Proportional to group size, then capped; a quota only as a ceiling.
        total = sum(caps.values())
        if total <= budget:
            return caps
        raw = {g: budget * c / total for g, c in caps.items()}
        out = {g: math.floor(v) for g, v in raw.items()}
        rest = budget - sum(out.values())
        for g in sorted(raw, key=lambda g: (-(raw[g] - out[g]), g))[:rest]:
            out[g] += 1
        return out
    out = {g: 0 for g in caps}
    open_groups = sorted(g for g in caps if caps[g] > 0)
    left = min(budget, sum(caps.values()))
    while left > 0 and open_groups:
        share = left // len(open_groups)
        if share == 0:
            for g in open_groups[:left]:
                out[g] += 1
            break
        nxt = []
        for g in open_groups:
            take = min(share, caps[g] - out[g])
            out[g] += take
            left -= take
            if out[g] < caps[g]:
                nxt.append(g)
        open_groups = nxt
    return out


def _diverse_pick(order: list[int], emb: np.ndarray, budget: int | None, min_distance: float,
                  reasons: dict[int, str], ids: list[str]) -> list[int]:
    kept: list[int] = []
    for i in order:
        if budget is not None and len(kept) >= budget:
            reasons.setdefault(i, "budget reached")
            continue
        if kept:
            sims = emb[kept] @ emb[i]
            j = int(np.argmax(sims))
            dist = 1.0 - float(sims[j])
            if dist < min_distance:
                reasons[i] = (f"too similar to kept record {ids[kept[j]]} "
                              f"(cosine distance {dist:.4f} < {min_distance})")
                continue
        kept.append(i)
    return kept


# Every name a scorer, the novelty or the quality step can write (numeric ones).
KNOWN_SCORES = {"response_loss", "ppl", "response_tokens", "response_loss_alone", "ifd", "option_prob_sum",
                "answer_prob", "curated_prob", "quality"}


def _check_names(examples: list[Example], rule_names: list[str], order_by: str | None) -> None:
    """A misspelt score would silently select nothing; refuse with the names that exist."""
    present = {k for ex in examples for k, v in ex.metadata.get("scores", {}).items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    for name in rule_names:
        if name not in present and name not in KNOWN_SCORES:
            raise ValueError(f"rule uses unknown score '{name}'; scores in this file: "
                             f"{', '.join(sorted(present)) or 'none (run sftflow score first)'}")
    if order_by and examples and order_by not in present:
        raise ValueError(f"no record has the score '{order_by}' to rank by; scores in this file: "
                         f"{', '.join(sorted(present)) or 'none (run sftflow score first)'}")


def select(examples: list[Example], cfg: SelectionConfig, *,
           embeddings: np.ndarray | None = None) -> SelectionResult:
    """Decide every record; see the module docstring for the order of decisions."""
    n = len(examples)
    budget = resolve_budget(cfg.budget, n)
    reasons: dict[int, str] = {}
    ids = [ex.id for ex in examples]
    rule = parse_rule(cfg.rule) if cfg.rule else None

    _check_names(examples, rule.names if rule else [], cfg.order_by)
    eligible = np.ones(n, dtype=bool)
    if rule is not None:
        eligible = rule.evaluate(examples)
        for i in np.flatnonzero(~eligible):
            reasons[int(i)] = f"rule false: {rule.explain(examples[i])}"
    values = score_column(examples, cfg.order_by) if cfg.order_by else None
    if values is not None and cfg.method in ("topk", "diverse"):
        for i in np.flatnonzero(eligible & ~np.isfinite(values)):
            flags = examples[i].metadata.get("scores", {}).get("flags", [])
            reasons[int(i)] = f"no value for '{cfg.order_by}'" + (f" (flags: {', '.join(flags)})" if flags else "")
        eligible &= np.isfinite(values)
    if cfg.method in ("kcenter", "diverse"):
        if embeddings is None:
            raise ValueError(f"method '{cfg.method}' needs embeddings: score with --scores embedding")
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if embeddings.shape[0] != n:
            raise ValueError(f"{embeddings.shape[0]} embeddings for {n} records")

    def ordered(idx: list[int]) -> list[int]:
        if values is None:
            return idx
        sign = -1.0 if cfg.descending else 1.0
        # Stable sort: ties keep input order, so results do not depend on the sort algorithm.
        return sorted(idx, key=lambda i: sign * values[i])

    cand = [int(i) for i in np.flatnonzero(eligible)]
    if cfg.quota is not None:
        groups: dict[str, list[int]] = {}
        for i in cand:
            groups.setdefault(group_of(examples[i], cfg.quota.by), []).append(i)
        budgets = allocate({g: len(v) for g, v in groups.items()}, budget, cfg.quota.max_per_group,
                           cfg.quota.balanced)
    else:
        groups, budgets = {"(all)": cand}, {"(all)": budget}

    picked: list[int] = []
    for g, idx in groups.items():
        b = budgets[g]
        if cfg.method == "kcenter":
            local = idx if b is None else [idx[j] for j in k_center_greedy(embeddings[idx], b, seed=cfg.seed)]
            # k-center's greedy order is its priority order.
            for r, i in enumerate(local):
                reasons[i] = f"k-center pick {r + 1} of {len(local)}" + (f" in group {g}" if cfg.quota else "")
            for i in set(idx) - set(local):
                reasons[i] = "not among the k-center picks (farthest-first covered the space)" + (
                    f" of group {g}" if cfg.quota else "")
            group_pick = local
        elif cfg.method == "diverse":
            group_pick = _diverse_pick(ordered(idx), embeddings, b, cfg.min_distance, reasons, ids)
        else:
            order = ordered(idx)
            group_pick = order if b is None else order[:b]
            for r, i in enumerate(order):
                if b is not None and r >= b:
                    reasons[i] = (f"group quota reached ({g}: {b})" if cfg.quota else
                                  f"below the top-{b} cut" if cfg.method == "topk" else "budget reached")
        picked.extend(group_pick)

    if cfg.method != "kcenter":
        picked = ordered(picked)
    chosen = {i: r for r, i in enumerate(picked)}
    selected, not_selected = [], []
    for i, ex in enumerate(examples):
        sel = i in chosen
        if sel:
            why = []
            if rule is not None:
                why.append(f"rule true: {rule.explain(ex)}")
            if cfg.method == "kcenter":
                why.append(reasons[i])
            elif values is not None:
                why.append(f"{cfg.order_by}={values[i]:.4g}, rank {chosen[i] + 1}")
            reason = "; ".join(why) or "selected"
        else:
            reason = reasons.get(i, "not selected")
        ex.metadata["selection"] = {"selected": sel, "rank": chosen[i] + 1 if sel else None,
                                    "reason": reason, "method": cfg.method, "rule": cfg.rule,
                                    "order_by": cfg.order_by}
        (selected if sel else not_selected).append(ex)
    selected.sort(key=lambda e: e.metadata["selection"]["rank"])
    summary = {"input": n, "selected": len(selected), "not_selected": len(not_selected),
               "budget": budget, "method": cfg.method, "rule": cfg.rule, "order_by": cfg.order_by,
               "eligible_after_rule": int(eligible.sum())}
    if cfg.quota is not None:
        summary["quota"] = {g: {"available": len(v), "budget": budgets[g],
                                "selected": sum(1 for i in v if i in chosen)} for g, v in groups.items()}
    return SelectionResult(selected, not_selected, summary)
