"""Matplotlib figures (Agg, no display) returned as base64 PNG for inline <img> tags.

Labels are data (step names, reasons, task labels, probe names) and are drawn as
written: matplotlib would read ``$...$`` as mathtext and fail on a label such as
``$\\frac{$``, so every figure is made with ``text.parse_math`` off.
"""

from __future__ import annotations

import base64
import functools
import io
import math
from typing import Any, Callable, TypeVar

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

BASE, TUNED = "#8c8c8c", "#1f77b4"

F = TypeVar("F", bound=Callable[..., Any])


def literal_text(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with plt.rc_context({"text.parse_math": False}):
            return fn(*args, **kwargs)
    return wrapper  # type: ignore[return-value]


def to_png(fig) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@literal_text
def funnel(steps: list[dict]) -> str:
    names = [s["step"] for s in steps]
    out = [s["out"] for s in steps]
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * len(steps)))
    ax.barh(names[::-1], out[::-1], color=TUNED)
    for y, v in enumerate(out[::-1]):
        ax.text(v, y, f" {v}", va="center", fontsize=8)
    if steps:
        ax.axvline(steps[0]["in"], color=BASE, ls="--", lw=1, label=f"input: {steps[0]['in']}")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel("records remaining after the step")
    ax.set_title("curation funnel")
    return to_png(fig)


@literal_text
def rejects(groups: list[dict], top: int = 15) -> str:
    g = groups[:top]
    labels = [f"{x['step']}: {x['reason'][:45]}" for x in g][::-1]
    fig, ax = plt.subplots(figsize=(9, max(1.8, 0.6 + 0.35 * len(g))))
    ax.barh(labels, [x["count"] for x in g][::-1], color="#d62728")
    ax.set_xlabel("rejected records")
    ax.set_title("rejects by reason" + (f" (top {top})" if len(groups) > top else ""))
    ax.tick_params(axis="y", labelsize=7)
    return to_png(fig)


@literal_text
def lengths(dist: dict[str, dict[str, list[int]]]) -> str:
    fig, axes = plt.subplots(1, 2, figsize=(9, 3))
    for ax, key in zip(axes, ("prompt", "response")):
        for name, d in dist.items():
            vals = d[key]
            if vals:
                ax.hist(vals, bins=30, alpha=0.55, label=f"{name} (n={len(vals)})")
        ax.set_title(f"{key} length")
        ax.set_xlabel("words")
        ax.legend(fontsize=7)
    return to_png(fig)


@literal_text
def tasks(counts: dict[str, int], top: int = 20) -> str:
    items = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
    fig, ax = plt.subplots(figsize=(7, max(1.8, 0.6 + 0.3 * len(items))))
    ax.barh([k for k, _ in items][::-1], [v for _, v in items][::-1], color=TUNED)
    ax.set_xlabel("examples")
    ax.set_title("task distribution (training data)")
    return to_png(fig)


@literal_text
def loss_curves(log: list[dict]) -> str | None:
    train = [(r["step"], r["loss"]) for r in log if "loss" in r and "step" in r and _finite(r["loss"])]
    ev = [(r["step"], r["eval_loss"]) for r in log if "eval_loss" in r and _finite(r["eval_loss"])]
    lr = [(r["step"], r["learning_rate"]) for r in log if "learning_rate" in r and _finite(r["learning_rate"])]
    if not train and not ev:
        return None
    fig, ax = plt.subplots(figsize=(8, 3.5))
    if train:
        ax.plot(*zip(*train), color=TUNED, label="train loss")
    if ev:
        ax.plot(*zip(*ev), "o-", color="#ff7f0e", label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    lines, labels = ax.get_legend_handles_labels()
    if lr:
        ax2 = ax.twinx()
        ax2.plot(*zip(*lr), color=BASE, ls=":", label="learning rate")
        ax2.set_ylabel("learning rate")
        ax2.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
        l2, lab2 = ax2.get_legend_handles_labels()
        lines, labels = lines + l2, labels + lab2
    ax.legend(lines, labels, fontsize=8, loc="upper right")
    ax.set_title("training")
    return to_png(fig)


@literal_text
def probes(pr: dict[str, dict]) -> str:
    names = list(pr)
    fig, ax = plt.subplots(figsize=(8, 0.8 + 0.5 * len(names)))
    h = 0.38
    for k, (side, color) in enumerate((("base", BASE), ("tuned", TUNED))):
        ys, xs, lo, hi = [], [], [], []
        for i, n in enumerate(names):
            s = pr[n].get(side)
            if s and _finite(s.get("rate")):
                ys.append(i + (h / 2 if side == "base" else -h / 2))
                xs.append(100 * s["rate"])
                lo.append(100 * (s["rate"] - (s["low"] or 0)))
                hi.append(100 * ((s["high"] or 0) - s["rate"]))
        if xs:
            ax.barh(ys, xs, height=h, color=color, xerr=[lo, hi], capsize=3, label=side)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlabel("% of answers (95% Wilson interval)")
    ax.set_xlim(0, 100)
    ax.legend(fontsize=8)
    ax.set_title("behaviour probes")
    return to_png(fig)


@literal_text
def choice(ch: dict[str, dict], metric: str = "acc") -> str:
    names = list(ch)
    fig, ax = plt.subplots(figsize=(7, 0.8 + 0.6 * len(names)))
    h = 0.38
    for side, color, off in (("base", BASE, h / 2), ("tuned", TUNED, -h / 2)):
        vals = [(i, 100 * ch[n][side][metric]) for i, n in enumerate(names)
                if ch[n].get(side) and _finite(ch[n][side].get(metric))]
        if vals:
            ax.barh([i + off for i, _ in vals], [v for _, v in vals], height=h, color=color, label=side)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel(f"{metric} (%)")
    ax.legend(fontsize=8)
    ax.set_title("multiple-choice (forgetting check)")
    return to_png(fig)


@literal_text
def judge(j: dict[str, Any]) -> str:
    fig, ax = plt.subplots(figsize=(7, 1.6))
    left = 0.0
    colors = {"win": "#2ca02c", "tie": "#bbbbbb", "loss": "#d62728"}
    for lab in ("win", "tie", "loss"):
        v = j.get(lab)
        v = 100 * v if _finite(v) else 0.0
        ax.barh([0], [v], left=left, color=colors[lab])
        if v >= 8:
            ax.text(left + v / 2, 0, f"{lab} {v:.0f}%", ha="center", va="center", fontsize=9)
        left += v
    ax.set_xlim(0, 100)
    ax.set_yticks([])
    ax.set_xlabel("% of pairs judged in both orders")
    ax.set_title("tuned vs base: " + ", ".join(
        f"{lab} {100 * j[lab]:.0f}%" if _finite(j.get(lab)) else f"{lab} –" for lab in ("win", "tie", "loss")),
        fontsize=9)
    return to_png(fig)


@literal_text
def loss_scatter(rows: list[dict]) -> str | None:
    pts = [(r["base_loss"], r["tuned_loss"]) for r in rows
           if _finite(r.get("base_loss")) and _finite(r.get("tuned_loss"))]
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    xs, ys = zip(*pts)
    ax.scatter(xs, ys, s=10, color=TUNED, alpha=0.7)
    lo, hi = min(xs + ys), max(xs + ys)
    ax.plot([lo, hi], [lo, hi], color=BASE, ls="--", lw=1)
    ax.set_xlabel("base loss")
    ax.set_ylabel("tuned loss")
    ax.set_title("per-example held-out loss (below the line: tuned better)")
    ax.title.set_fontsize(9)
    return to_png(fig)
