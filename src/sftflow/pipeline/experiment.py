"""Does the selection beat a random subset of the same size? Train both and measure.

Arms:
* **selection arms**: each named selection in ``selections`` (or the ``select`` config's
  one selection, named "selected"), all chosen from one scoring of the pool at the same
  budget, each trained ``selected_runs`` times with different training seeds (so its spread
  is training noise);
* **random**: ``random_arms`` (>= 3) random subsets of the same size, each drawn with
  its own seed and trained with the matching training seed (so its spread is subset
  plus training noise).

Every run trains the same recipe (``train`` section) and is evaluated on the same
held-out set: held-out loss, plus the behaviour probes and the reference figures when an
``eval`` section asks for generations. Each arm is reported as a mean with a t-based 95%
confidence interval; each selection arm's difference from random with a Welch interval
over runs and a prompt-paired interval over the test prompts (see ``experiment_stats``).
Verdicts are read off those intervals, whatever they say: "better", "worse", or "no better
than random".

With ``audit_key`` (records known to be bad, e.g. planted ones, carry it in metadata), the
key is removed from the pool before scoring, so no scorer or selector can read it, and each
arm's count of such records is reported against a random subset's hypergeometric range.

Checkpoints are never chosen on the held-out set here (``keep_best`` is off and it is
evaluated only after training): it is the test set of the experiment, and picking the
best checkpoint on it would flatter every arm. Runs are resumable and carry fingerprints
(``experiment_runs``): a finished run is reused only when its inputs are the same.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator
from rich.console import Console

from ..config import StrictModel, apply_overrides, validate
from ..evaluate.config import EvalConfig
from ..io import read_examples, write_examples, write_manifest
from ..io.atomic import atomic_write_text
from ..schema import Example
from ..select.config import SelectConfig, SelectionConfig
from ..train.config import TrainConfig
from .experiment_runs import run_one as _run_one
from .experiment_stats import (arms_table, audit_selection, audit_table, diff_ci, lower_is_better,
                               mean_ci, paired_diff, plot_arms, verdict)

console = Console(stderr=True)


class NamedSelection(SelectionConfig):
    """One selection arm: a name, then the options of ``select.selection``."""
    name: str = Field(..., min_length=1, description="the arm's name in the results")


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
    selections: list[NamedSelection] = Field(
        default_factory=list, description="named selection arms over one scoring of the pool, each at the "
                                          "budget; empty = one arm 'selected' from select.selection")
    audit_key: str | None = Field(None, description="metadata key of known-bad (planted) records: counted "
                                                    "per arm, removed before scoring so no selector reads it")
    select_only: bool = Field(False, description="score, select, draw the random subsets and audit them, then "
                                                 "stop: no training (minutes instead of hours)")

    @model_validator(mode="after")
    def _consistent(self):
        for name, sel in self.selection_arms().items():
            if sel.method == "kcenter" and "embedding" not in self.select.score.scores:
                raise ValueError(f"selection '{name}': method kcenter needs 'embedding' in select.score.scores")
        names = [s.name for s in self.selections]
        if "random" in names:
            raise ValueError("selections: 'random' names the random arms; call the selection something else")
        if len(set(names)) < len(names):
            raise ValueError(f"selections: names must be unique, got {names}")
        return self

    def selection_arms(self) -> dict[str, SelectionConfig]:
        arms = {s.name: SelectionConfig(**s.model_dump(exclude={"name"})) for s in self.selections}
        return arms or {"selected": self.select.selection}


def load_experiment_config(path: Path | None, overrides: list[str] | None = None, **flags: Any
                           ) -> ExperimentConfig:
    """From a recipe (its data, model, select, train and eval sections), an experiment file (the
    fields of ``ExperimentConfig`` at the top level: it has ``pool``), and/or flags."""
    data: dict[str, Any] = {}
    source = "experiment options"
    if path is not None:
        from ..config import load_yaml
        raw = load_yaml(path)
        source = str(path)
    if path is not None and "pool" in raw:
        data = dict(raw)
    elif path is not None:
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



# --------------------------------------------------------------------------- runs

def _without_key(ex: Example, key: str) -> Example:
    d = ex.to_dict()
    d["metadata"] = {k: v for k, v in (d.get("metadata") or {}).items() if k != key}
    return Example.from_dict(d)


def _read_sets(cfg: ExperimentConfig) -> tuple[list[Example], list[Example], dict[str, str | None]]:
    """(pool, held-out, audit marks). With an audit key the pool leaves without it: what marks a
    record as known-bad is kept aside, by id, for counting only."""
    from ..splits import split_heldout
    pool = read_examples(cfg.pool, skip_invalid=True).examples
    if cfg.heldout:
        heldout = read_examples(cfg.heldout).examples
    else:
        pool, heldout = split_heldout(pool, cfg.heldout_fraction, cfg.seed)
    marks: dict[str, str | None] = {}
    if cfg.audit_key:
        for ex in pool:
            v = ex.metadata.get(cfg.audit_key)
            marks[ex.id] = None if v is None else str(v)
        pool = [_without_key(ex, cfg.audit_key) for ex in pool]
    return pool, heldout, marks


def _select_arms(cfg: ExperimentConfig, pool_file: Path, out: Path, budget: int) -> dict[str, Any]:
    """Score the pool once, then run every named selection on those scores at the budget."""
    from ..select.pipeline import score_file, select_file
    scored = out / "select" / "scored.jsonl"
    score_file([pool_file], scored, cfg.select, model=cfg.model)
    results = {}
    for name, scfg in cfg.selection_arms().items():
        scfg = scfg.model_copy(update={"budget": budget})
        results[name] = select_file(scored, out / "select" / name, scfg, config_for_manifest=scfg)
    return results


def _statistics(cfg: ExperimentConfig, runs: list[dict], names: list[str]) -> dict[str, Any]:
    metrics = ["heldout_loss"] + sorted({k for r in runs for k in r
                                         if k.startswith(("probe:", "opening:", "choice:", "reference:"))})
    conf = cfg.confidence
    of = {a: [r for r in runs if r["arm"] == a] for a in names + ["random"]}
    arms = {a: {m: mean_ci([r.get(m) for r in of[a]], conf) for m in metrics} for a in of}
    diffs = {a: {m: diff_ci([r.get(m) for r in of[a]], [r.get(m) for r in of["random"]], conf)
                 for m in metrics} for a in names}
    per_prompt = sorted({m for r in runs for m in r.get("per_prompt") or {}})
    paired = {a: {m: paired_diff([r["per_prompt"][m] for r in of[a] if m in (r.get("per_prompt") or {})],
                                 [r["per_prompt"][m] for r in of["random"] if m in (r.get("per_prompt") or {})],
                                 conf) for m in per_prompt} for a in names}
    verdicts = {a: {m: {"runs": verdict(diffs[a][m], lower_is_better(m)),
                        **({"paired": verdict(paired[a][m], lower_is_better(m))} if m in paired[a] else {})}
                    for m in metrics} for a in names}
    return {"metrics": metrics, "arms": arms, "difference": diffs, "paired": paired, "verdicts": verdicts}


def run_experiment(cfg: ExperimentConfig, out_dir: str | Path) -> dict[str, Any]:
    from ..select.selectors import resolve_budget

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pool, heldout, marks = _read_sets(cfg)
    pool_file, heldout_file = out / "pool.jsonl", out / "heldout.jsonl"
    write_examples(pool_file, pool)
    write_examples(heldout_file, heldout)

    budget = resolve_budget(cfg.budget, len(pool))
    if budget >= len(pool):
        raise ValueError(f"budget {budget} is not smaller than the pool ({len(pool)}): every arm would be "
                         "the whole pool")
    selected = _select_arms(cfg, pool_file, out, budget)
    names = list(selected)
    n = min(len(s.selected) for s in selected.values())
    if n == 0:
        raise ValueError(f"a selection is empty ({', '.join(a for a in names if not selected[a].selected)}); "
                         "nothing to train on")
    if n < budget:
        console.print(f"[yellow][sftflow] a selection kept {n} < budget {budget}; random arms use {n} too")

    runs_per_arm = cfg.selected_runs or cfg.random_arms
    jobs = [(a, r, out / "select" / a / "selected.jsonl") for a in names for r in range(runs_per_arm)]
    subsets = {}
    for r in range(cfg.random_arms):
        # Drawn afresh every time (deterministic), so a changed pool or budget changes the subset
        # and with it the run's fingerprint.
        subsets[r] = random.Random(cfg.seed + 1000 + r).sample(pool, n)
        write_examples(out / "random" / f"subset_{r}.jsonl", subsets[r])
        jobs.append(("random", r, out / "random" / f"subset_{r}.jsonl"))
    audit = None
    if cfg.audit_key:
        chosen = {a: [ex.id for ex in s.selected] for a, s in selected.items()}
        chosen.update({f"random_{r}": [ex.id for ex in sub] for r, sub in subsets.items()})
        audit = audit_selection(marks, chosen, cfg.confidence)
    if cfg.select_only:
        return _selection_only(out, cfg, budget, n, len(pool), len(heldout), selected, audit)
    runs = [_run_one(cfg, arm, r, f, heldout_file, out / "runs" / f"{arm}_{r}", budget=budget)
            for arm, r, f in jobs]

    st = _statistics(cfg, runs, names)
    table = arms_table(st["metrics"], st["arms"], st["difference"], st["paired"], cfg.confidence)
    loss_verdicts = {a: st["verdicts"][a]["heldout_loss"]["runs"] for a in names}
    # With one training seed per selection arm the runs give no interval; the prompt-paired one
    # still says whether these trained models differ on these prompts.
    paired_verdicts = {a: st["verdicts"][a]["heldout_loss"].get("paired", "undecided (no per-prompt losses)")
                       for a in names}
    result = {"budget": budget, "subset_size": n, "pool": len(pool), "heldout": len(heldout),
              "random_arms": cfg.random_arms, "selected_runs": runs_per_arm, "selection_arms": names,
              "selection": {a: s.summary for a, s in selected.items()}, "runs": runs, **st,
              "verdict": loss_verdicts[names[0]] if len(names) == 1 else
              "; ".join(f"{a}: {v}" for a, v in loss_verdicts.items()),
              "verdict_paired": paired_verdicts[names[0]] if len(names) == 1 else
              "; ".join(f"{a}: {v}" for a, v in paired_verdicts.items()),
              "metric_note": "heldout_loss: lower is better; probe rates are shares of answers that "
                             "trip the probe (lower is better); opening:NAME is the mean probability of "
                             "opening an answer with that unwanted text (lower is better); reference:figures "
                             "is the share of answers stating the reference's figure (higher is better)",
              "table": table,
              "plot": str(plot_arms(st["metrics"], runs, st["arms"], out / "select_vs_random.png"))}
    text = table + (f"\n\nverdict (held-out loss): {result['verdict']}\n"
                    f"verdict (held-out loss, paired over prompts): {result['verdict_paired']}\n")
    if audit is not None:
        result["audit"] = audit
        text += "\n" + audit_table(audit) + "\n"
    atomic_write_text(out / "results.json", json.dumps(result, indent=2, default=str))
    atomic_write_text(out / "table.md", text)
    write_manifest(out, stage="experiment:select-vs-random", inputs=list(cfg.pool) + list(cfg.heldout),
                   config=cfg, counts={"pool": len(pool), "heldout": len(heldout), "subset": n,
                                       "runs": len(runs)})
    return result


def _selection_only(out: Path, cfg: ExperimentConfig, budget: int, n: int, n_pool: int, n_heldout: int,
                    selected: dict[str, Any], audit: dict[str, Any] | None) -> dict[str, Any]:
    """``select_only``: what the arms chose (and, with an audit key, how many known-bad
    records each let in against the random subsets), with no training and no verdict."""
    result = {"budget": budget, "subset_size": n, "pool": n_pool, "heldout": n_heldout,
              "random_arms": cfg.random_arms, "selection_arms": list(selected), "select_only": True,
              "selection": {a: s.summary for a, s in selected.items()},
              "verdict": "not trained (select_only): selection level only"}
    text = (f"select_only: {len(selected)} selection arm(s) and {cfg.random_arms} random subsets of {n} "
            f"from a pool of {n_pool}; nothing was trained.\n")
    if audit is not None:
        result["audit"] = audit
        text += "\n" + audit_table(audit) + "\n"
    result["table"] = text
    atomic_write_text(out / "results.json", json.dumps(result, indent=2, default=str))
    atomic_write_text(out / "table.md", text)
    write_manifest(out, stage="experiment:select-vs-random", inputs=list(cfg.pool) + list(cfg.heldout),
                   config=cfg, counts={"pool": n_pool, "heldout": n_heldout, "subset": n, "runs": 0})
    return result
