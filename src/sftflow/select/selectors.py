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


def _rule_filter(examples: list[Example], rule, reasons: dict[int, str]) -> np.ndarray:
    """Step 1: records for which the rule is false are out."""
    if rule is None:
        return np.ones(len(examples), dtype=bool)
    eligible = rule.evaluate(examples)
    for i in np.flatnonzero(~eligible):
        reasons[int(i)] = f"rule false: {rule.explain(examples[i])}"
    return eligible


def _drop_unranked(examples: list[Example], cfg: SelectionConfig, values: np.ndarray | None,
                   eligible: np.ndarray, reasons: dict[int, str]) -> np.ndarray:
    """Step 2: a record without the ranking score cannot be ranked by topk or diverse."""
    if values is None or cfg.method not in ("topk", "diverse"):
        return eligible
    for i in np.flatnonzero(eligible & ~np.isfinite(values)):
        flags = examples[i].metadata.get("scores", {}).get("flags", [])
        reasons[int(i)] = f"no value for '{cfg.order_by}'" + (f" (flags: {', '.join(flags)})" if flags else "")
    return eligible & np.isfinite(values)


def _checked_embeddings(cfg: SelectionConfig, embeddings: np.ndarray | None, n: int) -> np.ndarray | None:
    if cfg.method not in ("kcenter", "diverse"):
        return embeddings
    if embeddings is None:
        raise ValueError(f"method '{cfg.method}' needs embeddings: score with --scores embedding")
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if embeddings.shape[0] != n:
        raise ValueError(f"{embeddings.shape[0]} embeddings for {n} records")
    return embeddings


def _quota_groups(examples: list[Example], cand: list[int], cfg: SelectionConfig,
                  budget: int | None) -> tuple[dict[str, list[int]], dict[str, int | None]]:
    """Step 3: the candidates per group and each group's share of the budget."""
    if cfg.quota is None:
        return {"(all)": cand}, {"(all)": budget}
    groups: dict[str, list[int]] = {}
    for i in cand:
        groups.setdefault(group_of(examples[i], cfg.quota.by), []).append(i)
    budgets = allocate({g: len(v) for g, v in groups.items()}, budget, cfg.quota.max_per_group,
                       cfg.quota.balanced)
    return groups, budgets


@dataclass
class _Picker:
    """Step 4: the method's choice within one group, with a reason for every record it decides."""

    cfg: SelectionConfig
    values: np.ndarray | None
    embeddings: np.ndarray | None
    ids: list[str]
    reasons: dict[int, str]

    def ordered(self, idx: list[int]) -> list[int]:
        if self.values is None:
            return idx
        sign = -1.0 if self.cfg.descending else 1.0
        # Stable sort: ties keep input order, so results do not depend on the sort algorithm.
        return sorted(idx, key=lambda i: sign * self.values[i])

    def pick(self, group: str, idx: list[int], budget: int | None) -> list[int]:
        if self.cfg.method == "kcenter":
            return self._kcenter(group, idx, budget)
        if self.cfg.method == "diverse":
            return _diverse_pick(self.ordered(idx), self.embeddings, budget, self.cfg.min_distance,
                                 self.reasons, self.ids)
        return self._ranked(group, idx, budget)

    def _kcenter(self, group: str, idx: list[int], budget: int | None) -> list[int]:
        local = idx if budget is None else [idx[j] for j in k_center_greedy(self.embeddings[idx], budget,
                                                                            seed=self.cfg.seed)]
        where = f" in group {group}" if self.cfg.quota else ""
        # k-center's greedy order is its priority order.
        for r, i in enumerate(local):
            self.reasons[i] = f"k-center pick {r + 1} of {len(local)}{where}"
        of_group = f" of group {group}" if self.cfg.quota else ""
        for i in set(idx) - set(local):
            self.reasons[i] = f"not among the k-center picks (farthest-first covered the space){of_group}"
        return local

    def _ranked(self, group: str, idx: list[int], budget: int | None) -> list[int]:
        order = self.ordered(idx)
        if budget is None:
            return order
        why = (f"group quota reached ({group}: {budget})" if self.cfg.quota else
               f"below the top-{budget} cut" if self.cfg.method == "topk" else "budget reached")
        for i in order[budget:]:
            self.reasons[i] = why
        return order[:budget]


def _selected_reason(ex: Example, i: int, rank: int, cfg: SelectionConfig, rule, picker: _Picker) -> str:
    why = []
    if rule is not None:
        why.append(f"rule true: {rule.explain(ex)}")
    if cfg.method == "kcenter":
        why.append(picker.reasons[i])
    elif picker.values is not None:
        why.append(f"{cfg.order_by}={picker.values[i]:.4g}, rank {rank + 1}")
    return "; ".join(why) or "selected"


def _mark(examples: list[Example], chosen: dict[int, int], cfg: SelectionConfig, rule,
          picker: _Picker) -> tuple[list[Example], list[Example]]:
    """Write every record's decision into its metadata; selected come back in rank order."""
    selected, not_selected = [], []
    for i, ex in enumerate(examples):
        sel = i in chosen
        reason = (_selected_reason(ex, i, chosen[i], cfg, rule, picker) if sel
                  else picker.reasons.get(i, "not selected"))
        ex.metadata["selection"] = {"selected": sel, "rank": chosen[i] + 1 if sel else None,
                                    "reason": reason, "method": cfg.method, "rule": cfg.rule,
                                    "order_by": cfg.order_by}
        (selected if sel else not_selected).append(ex)
    selected.sort(key=lambda e: e.metadata["selection"]["rank"])
    return selected, not_selected


def select(examples: list[Example], cfg: SelectionConfig, *,
           embeddings: np.ndarray | None = None) -> SelectionResult:
    """Decide every record; see the module docstring for the order of decisions."""
    n = len(examples)
    budget = resolve_budget(cfg.budget, n)
    reasons: dict[int, str] = {}
    rule = parse_rule(cfg.rule) if cfg.rule else None
    _check_names(examples, rule.names if rule else [], cfg.order_by)
    values = score_column(examples, cfg.order_by) if cfg.order_by else None

    eligible = _drop_unranked(examples, cfg, values, _rule_filter(examples, rule, reasons), reasons)
    picker = _Picker(cfg, values, _checked_embeddings(cfg, embeddings, n), [ex.id for ex in examples], reasons)
    groups, budgets = _quota_groups(examples, [int(i) for i in np.flatnonzero(eligible)], cfg, budget)
    picked = [i for g, idx in groups.items() for i in picker.pick(g, idx, budgets[g])]
    if cfg.method != "kcenter":
        picked = picker.ordered(picked)
    chosen = {i: r for r, i in enumerate(picked)}
    selected, not_selected = _mark(examples, chosen, cfg, rule, picker)

    summary = {"input": n, "selected": len(selected), "not_selected": len(not_selected),
               "budget": budget, "method": cfg.method, "rule": cfg.rule, "order_by": cfg.order_by,
               "eligible_after_rule": int(eligible.sum())}
    if cfg.quota is not None:
        summary["quota"] = {g: {"available": len(v), "budget": budgets[g],
                                "selected": sum(1 for i in v if i in chosen)} for g, v in groups.items()}
    return SelectionResult(selected, not_selected, summary)
