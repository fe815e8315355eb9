"""CLI verbs of the select stage: score, select, experiment select-vs-random."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from ..config import ConfigError, apply_overrides, load_yaml, validate
from .config import SelectConfig


def load_select_config(path: Path | None, overrides: list[str] | None,
                       updates: dict[str, dict[str, Any]] | None = None) -> SelectConfig:
    """A SelectConfig from YAML (a bare select section or a whole recipe), flags, then --set."""
    data: dict[str, Any] = {}
    source = "select options"
    if path is not None:
        raw = load_yaml(path)
        data = dict(raw.get("select") or {}) if "select" in raw else raw
        source = str(path)
    for section, values in (updates or {}).items():
        given = {k: v for k, v in values.items() if v is not None}
        if given:
            data[section] = {**(data.get(section) or {}), **given}
    apply_overrides(data, [o.removeprefix("select.") for o in overrides or []])
    return validate(SelectConfig, data, source)


def _csv(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def register(app: typer.Typer) -> None:
    @app.command("score")
    def score_cmd(
        data: list[Path] = typer.Argument(..., help="records to score (any supported format)"),
        out: Path = typer.Option(..., "-o", "--out", help="output JSONL (scores in metadata.scores)"),
        model: Optional[str] = typer.Option(None, "--model", help="scoring model [smollm2-135m-instruct]"),
        scores: Optional[str] = typer.Option(None, "--scores", help="ppl,ifd,option_probs,embedding [ppl,ifd]"),
        max_length: Optional[int] = typer.Option(None, "--max-length", help="longer records are flagged [2048]"),
        batch_size: Optional[int] = typer.Option(None, "--batch-size"),
        precision: Optional[str] = typer.Option(None, "--precision", help="auto | fp32 | bf16 [auto]"),
        cache: Optional[str] = typer.Option(None, "--cache", help="score cache file"),
        no_cache: bool = typer.Option(False, "--no-cache", help="compute everything, store nothing"),
        embed_method: Optional[str] = typer.Option(None, "--embed", help="sbert | tfidf [sbert]"),
        curated: Optional[list[str]] = typer.Option(None, "--curated", help="curated set: adds novelty scores"),
        quality_model: Optional[str] = typer.Option(None, "--quality-model", help="saved quality model folder"),
        quality_labels: Optional[str] = typer.Option(None, "--quality-labels",
                                                     help="JSONL {id, label}: train a quality model"),
        fmt: str = typer.Option("auto", "--format"),
        config: Optional[Path] = typer.Option(None, "--config", help="YAML select section (or a recipe)"),
        set_: Optional[list[str]] = typer.Option(None, "--set", help="override: score.max_length=1024"),
        quiet: bool = typer.Option(False, "--quiet"),
    ):
        """Score records with a model: response loss/ppl, IFD, option probabilities, embeddings."""
        from .pipeline import score_file
        updates: dict[str, dict[str, Any]] = {"score": {
            "model": model, "scores": _csv(scores), "max_length": max_length, "batch_size": batch_size,
            "precision": precision, "cache": cache, "use_cache": False if no_cache else None,
            "embedding_method": embed_method}}
        if curated:
            updates["novelty"] = {"curated": list(curated)}
        if quality_model or quality_labels:
            updates["quality"] = {"model_dir": quality_model, "labels": quality_labels}
        cfg = load_select_config(config, set_, updates)
        report = score_file(data, out, cfg, fmt=fmt, progress=not quiet)
        sc = report.get("scores", {})
        typer.echo(f"scored {report['written']} records ({sc.get('losses_computed', 0)} losses computed, "
                   f"{sc.get('flagged', 0)} flagged, {sc.get('ifd_above_1', 0)} with IFD > 1) -> {out}")
        if "novelty" in report:
            nv = report["novelty"]
            typer.echo(f"novelty: fold AUC {', '.join(f'{a:.3f}' for a in nv['fold_auc'][0])}; "
                       f"{nv['novel']} novel records")
        if "quality" in report:
            q = report["quality"]
            typer.echo(f"quality: held-out AUC {q.get('heldout_auc')} ({q.get('model_dir')})")

    @app.command("select")
    def select_cmd(
        scored: Path = typer.Argument(..., help="a file written by 'sftflow score'"),
        out: Path = typer.Option(..., "-o", "--out", help="output folder"),
        method: Optional[str] = typer.Option(None, "--method", help="topk | rule | kcenter | diverse"),
        by: Optional[str] = typer.Option(None, "--by", help="score to rank by (e.g. ifd, ppl, quality)"),
        ascending: bool = typer.Option(False, "--ascending", help="lowest first"),
        budget: Optional[float] = typer.Option(None, "--budget", help=">= 1: count; < 1: fraction"),
        rule: Optional[str] = typer.Option(None, "--rule", help="e.g. '(ppl > 20 or option_prob_sum < 0.5) "
                                                                "and quality > 0.7'"),
        min_distance: Optional[float] = typer.Option(None, "--min-distance", help="diverse: cosine distance"),
        quota_by: Optional[str] = typer.Option(None, "--quota-by", help="metadata key of the group"),
        max_per_group: Optional[int] = typer.Option(None, "--max-per-group"),
        config: Optional[Path] = typer.Option(None, "--config", help="YAML select section (or a recipe)"),
        set_: Optional[list[str]] = typer.Option(None, "--set", help="override: selection.budget=100"),
    ):
        """Choose a subset from stored scores; writes selected, not_selected and a manifest."""
        from .pipeline import select_file
        sel: dict[str, Any] = {"method": method, "order_by": by, "rule": rule, "min_distance": min_distance,
                               "descending": False if ascending else None,
                               "budget": int(budget) if budget is not None and budget >= 1 else budget}
        if quota_by or max_per_group:
            sel["quota"] = {k: v for k, v in (("by", quota_by), ("max_per_group", max_per_group)) if v}
        if config is None and not any(v is not None for v in sel.values()):
            raise ConfigError("say how to select: --by SCORE --budget N, --rule, --method, or --config")
        if config is None and method is None:
            sel["method"] = "topk" if by else "rule"
        # Without a file the flags are the whole selection: no default rule sneaks in.
        cfg = load_select_config(config, set_, {"selection": sel})
        res = select_file(scored, out, cfg.selection, config_for_manifest=cfg)
        typer.echo(f"{res.summary['input']} in, {len(res.selected)} selected, {len(res.not_selected)} not "
                   f"selected -> {out}")

    exp = typer.Typer(no_args_is_help=True, help="Experiments that test whether a choice pays off.")
    app.add_typer(exp, name="experiment")

    @exp.command("select-vs-random")
    def select_vs_random_cmd(
        config: Optional[Path] = typer.Option(None, "--config", help="YAML experiment config (or a recipe "
                                                                       "with an 'experiment:' section)"),
        pool: Optional[list[str]] = typer.Option(None, "--pool", help="pool files"),
        heldout: Optional[list[str]] = typer.Option(None, "--heldout", help="held-out files"),
        budget: Optional[float] = typer.Option(None, "--budget", help="examples per arm (or a fraction)"),
        arms: Optional[int] = typer.Option(None, "--random-arms", help="random subsets, >= 3 [3]"),
        model: Optional[str] = typer.Option(None, "--model"),
        out: Path = typer.Option(Path("runs/select-vs-random"), "-o", "--out"),
        set_: Optional[list[str]] = typer.Option(None, "--set", help="override: train.max_steps=20"),
    ):
        """Train on the selection and on R random subsets of the same size; compare held-out results."""
        from ..pipeline.experiment import load_experiment_config, run_experiment
        cfg = load_experiment_config(config, set_, pool=pool, heldout=heldout, budget=budget,
                                     random_arms=arms, model=model)
        result = run_experiment(cfg, out)
        typer.echo(result["table"])
        typer.echo(f"verdict: {result['verdict']}\nresults: {out / 'results.json'}")
