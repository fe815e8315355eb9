"""Held-out loss and perplexity on response tokens, base vs tuned.

Per-example losses come from ``sftflow.nll.example_losses`` (the same chat
template and masks as training), so "eval loss" here and in the trainer's log mean
the same thing. The aggregate is token-weighted: total NLL over total supervised
tokens, which is what perplexity is defined over; the mean of per-example means is
reported too because it weights a short answer like a long one.
"""

from __future__ import annotations

import math
from typing import Any

from ..nll import LossOptions, example_losses


def perplexity(mean_nll: float) -> float:
    if math.isnan(mean_nll):
        return float("nan")
    try:
        return math.exp(mean_nll)
    except OverflowError:   # a diverged model; say so rather than crash
        return float("inf")


def aggregate(losses) -> dict[str, Any]:
    ok = [x for x in losses if x.flag is None and x.n_tokens > 0]
    flagged: dict[str, int] = {}
    for x in losses:
        if x.flag is not None:
            flagged[x.flag] = flagged.get(x.flag, 0) + 1
    tokens = sum(x.n_tokens for x in ok)
    total = sum(x.loss_sum for x in ok)
    mean = total / tokens if tokens else float("nan")
    return {
        "loss": mean,
        "perplexity": perplexity(mean),
        "example_mean": sum(x.mean for x in ok) / len(ok) if ok else float("nan"),
        "n": len(ok),
        "tokens": tokens,
        "flagged": flagged,
    }


def heldout_loss(model, tokenizer, examples, *, train_on: str = "last", max_length: int | None = None,
                 batch_size: int = 8) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(aggregate, per-example rows) for one model."""
    losses = example_losses(model, tokenizer, examples,
                            LossOptions(train_on=train_on, max_length=max_length, batch_size=batch_size))
    rows = [{"id": x.id, "loss": x.mean, "loss_sum": x.loss_sum, "tokens": x.n_tokens, "flag": x.flag}
            for x in losses]
    return aggregate(losses), rows


def paired_delta_interval(base_rows: list[dict], tuned_rows: list[dict], *, samples: int = 1000,
                          seed: int = 0) -> tuple[float, float]:
    """95% paired BCa bootstrap interval (scipy) of (tuned - base) token-weighted loss, resampling examples.

    Paired because both models score the same examples: resampling examples keeps each
    example's two losses together, so the interval reflects the difference, not the
    spread of example difficulty.
    """
    from ..intervals import paired_ratio_delta
    t_by_id = {r["id"]: r for r in tuned_rows}
    pairs = [(b, t_by_id[b["id"]]) for b in base_rows
             if b["id"] in t_by_id and b.get("flag") is None and t_by_id[b["id"]].get("flag") is None
             and b["tokens"] > 0]
    return paired_ratio_delta([b["loss_sum"] for b, _ in pairs], [t["loss_sum"] for _, t in pairs],
                              [b["tokens"] for b, _ in pairs], samples=samples, seed=seed)


def compare(base: dict[str, Any] | None, tuned: dict[str, Any] | None,
            base_rows: list[dict] | None = None, tuned_rows: list[dict] | None = None) -> dict[str, Any]:
    """The ``loss`` block of metrics.json: base, tuned and their difference (tuned - base)."""
    out: dict[str, Any] = {"base": base, "tuned": tuned}
    if base and tuned:
        out["delta"] = tuned["loss"] - base["loss"]
        if base_rows and tuned_rows:
            out["delta_low"], out["delta_high"] = paired_delta_interval(base_rows, tuned_rows)
        out["perplexity_ratio"] = (tuned["perplexity"] / base["perplexity"]
                                   if base["perplexity"] not in (0, float("inf")) else float("nan"))
    return out


def per_example_table(base_rows: list[dict] | None, tuned_rows: list[dict] | None) -> list[dict]:
    """One row per example with both losses and the difference, for the report."""
    by_id: dict[str, dict] = {}
    for side, rows in (("base", base_rows), ("tuned", tuned_rows)):
        for r in rows or []:
            by_id.setdefault(r["id"], {"id": r["id"]})[f"{side}_loss"] = r["loss"]
            by_id[r["id"]]["tokens"] = r["tokens"]
    for r in by_id.values():
        if "base_loss" in r and "tuned_loss" in r:
            r["delta"] = r["tuned_loss"] - r["base_loss"]
    return list(by_id.values())
