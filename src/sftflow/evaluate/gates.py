"""Gates: pass / fail / inconclusive from the interval of a base-vs-tuned difference.

A point estimate alone never passes or fails a gate: 73% vs 65% on 100 questions is
noise as often as not. Each gate reads the 95% interval of one difference (tuned -
base): a paired rate interval (McNemar/Newcombe) for probes, reference figures and
multiple-choice accuracy, the paired bootstrap interval of an unwanted opening's mean
probability (``openings.<name>``), or the paired bootstrap interval of a loss difference,
divided by the base loss (a relative change) for losses.

- ``higher`` / ``lower``: a gain is wanted. Pass when the whole interval is on the
  wanted side of zero, fail when it is wholly on the other side, else inconclusive.
- ``no_worse``: a non-inferiority check. "Worse" is the direction opposite to
  ``better``. Pass when the interval excludes a worsening larger than ``margin``; fail
  when the whole interval is a worsening larger than ``fail_beyond``; else inconclusive.
  (``fail_beyond: 0`` fails on any significant drop, as a paired test would.)
"""

from __future__ import annotations

import math
from typing import Any

from .config import GateSpec

LOSSES = ("loss", "general.loss")


def _interval(metrics: dict, path: str) -> tuple[float, float, float] | None:
    """(point, low, high) of tuned - base for ``path``; relative for losses; None if not measured."""
    if path in LOSSES:
        block = metrics.get("loss") if path == "loss" else (metrics.get("general") or {}).get("loss")
        if not block or block.get("delta_low") is None or not (block.get("base") or {}).get("loss"):
            return None
        b = block["base"]["loss"]
        return block["delta"] / b, block["delta_low"] / b, block["delta_high"] / b
    head, _, name = path.partition(".")
    if head == "reference":
        block = (metrics.get("reference") or {}).get(name)
    elif head in ("probes", "choice", "openings"):
        block = (metrics.get(head) or {}).get(name)
    else:
        raise ValueError(f"gate metric {path!r}: expected loss, general.loss, reference.<part>, "
                         "probes.<name>, openings.<name> or choice.<task>")
    paired = (block or {}).get("paired")
    if not paired or paired.get("n", 0) == 0:
        return None
    return paired["diff"], paired["diff_low"], paired["diff_high"]


def verdict(spec: GateSpec, point: float, low: float, high: float, *, loss: bool) -> tuple[str, str]:
    """(status, reason) for one interval."""
    if any(math.isnan(x) for x in (low, high)):
        return "inconclusive", "no interval"
    span = f"{point:+.3f} (95% CI {low:+.3f} to {high:+.3f})"
    if spec.want in ("higher", "lower"):
        sign = 1 if spec.want == "higher" else -1
        lo, hi = sorted((sign * low, sign * high))
        status = "pass" if lo > 0 else "fail" if hi < 0 else "inconclusive"
        return status, f"change {span}; want {spec.want}"
    better = spec.better or ("lower" if loss else "higher")
    # worsening = how much worse tuned is (positive = worse)
    w_low, w_high = sorted((low, high) if better == "lower" else (-high, -low))
    fail_beyond = spec.margin if spec.fail_beyond is None else spec.fail_beyond
    status = "pass" if w_high <= spec.margin else "fail" if w_low > fail_beyond else "inconclusive"
    return status, (f"change {span}; pass if a worsening beyond {spec.margin:g} is excluded, "
                    f"fail if the interval is wholly worse than {fail_beyond:g}")


def _expand(spec: GateSpec, metrics: dict) -> list[str]:
    if spec.metric.endswith(".*"):
        head = spec.metric[:-2]
        return [f"{head}.{k}" for k in (metrics.get(head) or {})]
    return [spec.metric]


def evaluate_gates(specs: list[GateSpec], metrics: dict) -> dict[str, Any]:
    """``{"status": worst verdict, "gates": [...]}``; unmeasured metrics are listed, not judged."""
    rows = []
    for spec in specs:
        for path in _expand(spec, metrics):
            found = _interval(metrics, path)
            name = spec.name or f"{path} {spec.want}"
            if spec.metric.endswith(".*"):
                name = f"{name} ({path.split('.', 1)[1]})"
            if found is None:
                rows.append({"name": name, "metric": path, "status": "not measured"})
                continue
            status, reason = verdict(spec, *found, loss=path in LOSSES)
            rows.append({"name": name, "metric": path, "status": status, "reason": reason,
                         "point": found[0], "low": found[1], "high": found[2]})
    statuses = {r["status"] for r in rows}
    worst = "fail" if "fail" in statuses else "inconclusive" if "inconclusive" in statuses else "pass"
    return {"status": worst, "gates": rows}
