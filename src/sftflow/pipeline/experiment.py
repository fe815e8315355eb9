"""Does the selection beat a random subset of the same size? Train both and measure.

Arms:
* **selected**: the subset chosen by the ``select`` config, trained ``selected_runs``
  times with different training seeds (so its spread is training noise);
* **random**: ``random_arms`` (>= 3) random subsets of the same size, each drawn with
  its own seed and trained with the matching training seed (so its spread is subset
  plus training noise).

Every run trains the same recipe (``train`` section) and is evaluated on the same
held-out set: held-out loss, plus the behaviour probes when an ``eval`` section asks
for generations. Each arm is reported as a mean with a t-based 95% confidence
interval, and the difference selected - random with a Welch interval. The verdict is
read off that interval, whatever it says: "better", "worse", or "no better than random".

Checkpoints are never chosen on the held-out set here (``keep_best`` is off and it is
evaluated only after training): it is the test set of the experiment, and picking the
best checkpoint on it would flatter every arm. Runs are resumable: a finished run's
``result.json`` is reused, and a trained run is only evaluated again when the ``eval``
section changed.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, model_validator
from rich.console import Console

from ..config import StrictModel, apply_overrides, validate
from ..evaluate.config import EvalConfig
from ..io import read_examples, write_examples, write_manifest
from ..io.atomic import atomic_write_text
from ..train.config import TrainConfig
from ..select.config import SelectConfig

console = Console(stderr=True)


class ExperimentConfig(StrictModel):
    pool: list[str] = Field(..., min_length=1, description="pool files the arms draw from")
    heldout: list[str] = Field(default_factory=list, description="held-out files; empty = seeded split")
    heldout_fraction: float = Field(0.1, gt=0, lt=1)
    budget: int | float = Field(..., gt=0, description="examples per arm (>= 1) or a fraction of the pool")
    random_arms: int = Field(3, ge=3, description="random subsets (R >= 3, one seed each)")
    selected_runs: int | None = Field(None, ge=1, description="training seeds for the selected arm [R]")
    model: str | None = None
    seed: int = 0
    confidence: float = Field(0.95, gt=0.5, lt=1)
    select: SelectConfig = Field(default_factory=SelectConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig | None = Field(None, description="held-out loss + probes per run; None = loss only")

    @model_validator(mode="after")
    def _consistent(self):
        if self.select.selection.method == "kcenter" and "embedding" not in self.select.score.scores:
            raise ValueError("select.selection.method kcenter needs 'embedding' in select.score.scores")
        return self


def load_experiment_config(path: Path | None, overrides: list[str] | None = None, **flags: Any
                           ) -> ExperimentConfig:
    """From a recipe (its data, model, select, train and eval sections) and/or flags."""
    data: dict[str, Any] = {}
    source = "experiment options"
    if path is not None:
        from ..config import load_yaml
        raw = load_yaml(path)
        source = str(path)
        d = raw.get("data") or {}
        data = {"pool": d.get("train") or [], "heldout": d.get("test") or [],
                "model": raw.get("model"), "seed": raw.get("seed", 0)}
        if d.get("test_fraction") is not None:
            data["heldout_fraction"] = d["test_fraction"]
        for section in ("select", "train", "eval"):
            if raw.get(section) is not None:
                data[section] = raw[section]
    for k, v in flags.items():
        if v is not None and v != []:
            data[k] = int(v) if k == "budget" and v >= 1 else v
    data = {k: v for k, v in data.items() if v is not None}
    apply_overrides(data, overrides)
    return validate(ExperimentConfig, data, source)


# --------------------------------------------------------------------------- statistics

def mean_ci(values: list[float], confidence: float = 0.95) -> dict[str, Any]:
    """Mean with scipy's Student-t interval (n is small: 3-5 runs); constant runs: the point."""
    from scipy import stats
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    n = len(v)
    if n == 0:
        return {"n": 0, "mean": None, "low": None, "high": None, "sd": None}
    m = float(v.mean())
    if n == 1:
        return {"n": 1, "mean": m, "low": None, "high": None, "sd": None}
    sd = float(v.std(ddof=1))
    if sd == 0:
        return {"n": n, "mean": m, "low": m, "high": m, "sd": 0.0}
    ci = stats.ttest_1samp(v, 0.0).confidence_interval(confidence_level=confidence)
    return {"n": n, "mean": m, "low": float(ci.low), "high": float(ci.high), "sd": sd}


def diff_ci(a: list[float], b: list[float], confidence: float = 0.95) -> dict[str, Any]:
    """mean(a) - mean(b) with scipy's Welch (unequal variances) t interval; unmeasured runs dropped."""
    from ..intervals import welch_interval
    return welch_interval([x for x in a if x is not None and math.isfinite(x)],
                          [x for x in b if x is not None and math.isfinite(x)], confidence)


def verdict(diff: dict[str, Any], lower_is_better: bool = True) -> str:
    lo, hi = diff.get("low"), diff.get("high")
    if lo is None or hi is None:
        return "undecided (too few runs for an interval)"
    better = hi < 0 if lower_is_better else lo > 0
    worse = lo > 0 if lower_is_better else hi < 0
    if better:
        return "selection beats random"
    if worse:
        return "selection is worse than random"
    return "no better than random (the interval of the difference contains 0)"


# --------------------------------------------------------------------------- runs

def _run_one(cfg: ExperimentConfig, arm: str, r: int, train_file: Path, heldout_file: Path,
             run_dir: Path) -> dict[str, Any]:
    # Resumable at two depths: a finished run (same evaluation asked) is reused whole; a
    # trained run whose evaluation is missing or was asked differently (an eval section
    # added to a finished experiment, a kill during evaluation) is only evaluated again.
    done = run_dir / "result.json"
    want_eval = cfg.eval.model_dump(mode="json") if cfg.eval is not None else None
    if done.exists():
        prev = json.loads(done.read_text())
        if prev.get("eval_config") == want_eval:
            return prev
    seed = (cfg.train.seed or 0) + r         # an unset train seed is 0
    trained = run_dir / "train" / "train_result.json"
    if not trained.exists():
        from ..train.sft import train
        # The held-out set is evaluated once, at the end: evaluating on it during training
        # could only serve checkpoint picking (peeking at the test set) and costs time.
        tcfg = cfg.train.model_copy(update={"model": cfg.train.model or cfg.model, "seed": seed,
                                            "keep_best": False, "eval_steps": 10 ** 9, "data": [], "eval": []})
        console.print(f"[sftflow] experiment: training arm '{arm}' run {r + 1}")
        train(tcfg, train_file, heldout_file, out_dir=run_dir / "train", quiet=True)
    res = json.loads(trained.read_text())
    out: dict[str, Any] = {"arm": arm, "run": r, "train_seed": seed, "train_file": str(train_file),
                           "train_examples": res["train_examples"], "steps": res["steps"],
                           "train_eval_loss": res["eval_loss"], "heldout_loss": res["eval_loss"],
                           "eval_config": want_eval}
    if cfg.eval is not None:
        from ..evaluate.run import evaluate
        console.print(f"[sftflow] experiment: evaluating arm '{arm}' run {r + 1}")
        model_dir = res["merged_dir"] or res["output_dir"]
        m = evaluate(cfg.eval, model=str(model_dir), data=[str(heldout_file)], out_dir=run_dir / "eval")
        if cfg.eval.loss and (m.get("loss") or {}).get("tuned"):
            out["heldout_loss"] = m["loss"]["tuned"]["loss"]
        for name, p in (m.get("probes") or {}).items():
            out[f"probe:{name}"] = p["tuned"]["rate"]
        for name, c in (m.get("choice") or {}).items():
            acc = (c.get("tuned") or {}).get("acc")
            if acc is not None:
                out[f"choice:{name}"] = acc
    atomic_write_text(done, json.dumps(out, indent=2))
    return out


def _table(metrics: list[str], arms: dict[str, dict], diffs: dict[str, dict], conf: float) -> str:
    pct = f"{conf:.0%}"
    lines = [f"| metric | selected mean [{pct} CI] | random mean [{pct} CI] | selected - random [{pct} CI] |",
             "|---|---|---|---|"]

    def f(x):
        return "n/a" if x is None else f"{x:.4f}"

    for m in metrics:
        s, r, d = arms["selected"][m], arms["random"][m], diffs[m]
        lines.append(f"| {m} | {f(s['mean'])} [{f(s['low'])}, {f(s['high'])}] (n={s['n']}) | "
                     f"{f(r['mean'])} [{f(r['low'])}, {f(r['high'])}] (n={r['n']}) | "
                     f"{f(d['diff'])} [{f(d['low'])}, {f(d['high'])}] |")
    return "\n".join(lines)


def _plot(metrics: list[str], runs: list[dict], arms: dict[str, dict], path: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.4), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        for x, arm in enumerate(("selected", "random")):
            ys = [r[m] for r in runs if r["arm"] == arm and r.get(m) is not None]
            ax.scatter([x] * len(ys), ys, alpha=0.6, s=18)
            s = arms[arm][m]
            if s["mean"] is not None:
                err = None if s["low"] is None else [[s["mean"] - s["low"]], [s["high"] - s["mean"]]]
                ax.errorbar([x + 0.15], [s["mean"]], yerr=err, fmt="o", color="black", capsize=4)
        ax.set_xticks([0, 1], ["selected", "random"])
        ax.set_title(m, fontsize=9)
    fig.suptitle("select vs random: runs, mean and 95% CI", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run_experiment(cfg: ExperimentConfig, out_dir: str | Path) -> dict[str, Any]:
    from ..splits import split_heldout
    from ..select.pipeline import score_and_select
    from ..select.selectors import resolve_budget

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pool = read_examples(cfg.pool, skip_invalid=True).examples
    if cfg.heldout:
        heldout = read_examples(cfg.heldout).examples
    else:
        pool, heldout = split_heldout(pool, cfg.heldout_fraction, cfg.seed)
    pool_file, heldout_file = out / "pool.jsonl", out / "heldout.jsonl"
    write_examples(pool_file, pool)
    write_examples(heldout_file, heldout)

    budget = resolve_budget(cfg.budget, len(pool))
    if budget >= len(pool):
        raise ValueError(f"budget {budget} is not smaller than the pool ({len(pool)}): every arm would be "
                         "the whole pool")
    sel_cfg = cfg.select.model_copy(deep=True)
    sel_cfg.selection = sel_cfg.selection.model_copy(update={"budget": budget})
    _, sel = score_and_select([pool_file], out / "select", sel_cfg, model=cfg.model)
    n = len(sel.selected)
    if n < budget:
        console.print(f"[yellow][sftflow] the selection kept {n} < budget {budget}; random arms use {n} too")
    if n == 0:
        raise ValueError("the selection is empty; nothing to train on")

    jobs = [("selected", r, out / "select" / "selected.jsonl")
            for r in range(cfg.selected_runs or cfg.random_arms)]
    for r in range(cfg.random_arms):
        f = out / "random" / f"subset_{r}.jsonl"
        if not f.exists():
            write_examples(f, random.Random(cfg.seed + 1000 + r).sample(pool, n))
        jobs.append(("random", r, f))
    runs = [_run_one(cfg, arm, r, f, heldout_file, out / "runs" / f"{arm}_{r}") for arm, r, f in jobs]

    metrics = ["heldout_loss"] + sorted({k for r in runs for k in r if k.startswith(("probe:", "choice:"))})
    arms = {a: {m: mean_ci([r.get(m) for r in runs if r["arm"] == a], cfg.confidence) for m in metrics}
            for a in ("selected", "random")}
    diffs = {m: diff_ci([r.get(m) for r in runs if r["arm"] == "selected"],
                        [r.get(m) for r in runs if r["arm"] == "random"], cfg.confidence) for m in metrics}
    table = _table(metrics, arms, diffs, cfg.confidence)
    result = {"budget": budget, "subset_size": n, "pool": len(pool), "heldout": len(heldout),
              "random_arms": cfg.random_arms, "selected_runs": cfg.selected_runs or cfg.random_arms,
              "selection": sel.summary, "runs": runs, "arms": arms, "difference": diffs,
              "verdict": verdict(diffs["heldout_loss"], lower_is_better=True),
              "metric_note": "heldout_loss: lower is better; probe rates are shares of answers that "
                             "trip the probe", "table": table,
              "plot": str(_plot(metrics, runs, arms, out / "select_vs_random.png"))}
    atomic_write_text(out / "results.json", json.dumps(result, indent=2, default=str))
    atomic_write_text(out / "table.md", table + f"\n\nverdict (held-out loss): {result['verdict']}\n")
    write_manifest(out, stage="experiment:select-vs-random", inputs=list(cfg.pool) + list(cfg.heldout),
                   config=cfg, counts={"pool": len(pool), "heldout": len(heldout), "subset": n,
                                       "runs": len(runs)})
    return result
