"""CLI verbs of the select stage: score and select."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from ..config import ConfigError
from ..select.config import NoveltyConfig, QualityConfig, ScoreConfig, SelectConfig, SelectionConfig
from .flags import ENGINE_NAMES, config_flags, in_section, with_flags
from .options import QUIET, config_option, out_option, set_option, stage_config

SCORE_FLAGS = (
    in_section(config_flags(ScoreConfig, names={"embedding_method": ("--embed", "--embedding-method"),
                                                "use_cache": ("--use-cache", "--no-cache"),
                                                **ENGINE_NAMES}), "score")
    # Novelty against a curated set, and a quality model: sections of their own.
    + in_section(config_flags(NoveltyConfig, names={"curated": ("--curated",)}, prefix="novelty-"), "novelty")
    + in_section(config_flags(QualityConfig, skip={"judge": "an LLM labeller is configured in --config "
                                                            "or with --set quality.judge.KEY=VALUE"},
                              names={"model_dir": ("--quality-model",), "labels": ("--quality-labels",)},
                              prefix="quality-"),
                 "quality"))
SELECTION_FLAGS = in_section(config_flags(
    SelectionConfig, names={"order_by": ("--by", "--order-by"), "descending": ("--descending", "--ascending"),
                            "quota.by": ("--quota-by",),
                            "quota.max_per_group": ("--max-per-group", "--quota-max-per-group")}), "selection")


def load_select_config(path: Path | None, overrides: list[str] | None, given: dict[str, Any]) -> SelectConfig:
    """A SelectConfig from YAML (a bare select section or a whole recipe), flags, then --set."""
    return stage_config(SelectConfig, path, "select", given, overrides, "select options")


@with_flags(SCORE_FLAGS)
def score_cmd(
    data: list[Path] = typer.Argument(..., help="records to score (any supported format)"),
    out: Path = out_option(help="output JSONL (scores in metadata.scores)"),
    fmt: str = typer.Option("auto", "--format"),
    config: Optional[Path] = config_option(),
    set_: Optional[list[str]] = set_option("score.max_length=1024"),
    quiet: bool = QUIET,
    given: dict | None = None,
):
    """Score records with a model: response loss/ppl, IFD, option probabilities, embeddings."""
    from ..select.pipeline import score_file
    cfg = load_select_config(config, set_, given or {})
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


@with_flags(SELECTION_FLAGS)
def select_cmd(
    scored: Path = typer.Argument(..., help="a file written by 'sftflow score'"),
    out: Path = out_option(),
    config: Optional[Path] = config_option(),
    set_: Optional[list[str]] = set_option("selection.budget=100"),
    given: dict | None = None,
):
    """Choose a subset from stored scores; writes selected, not_selected and a manifest."""
    from ..select.pipeline import select_file
    sel = dict((given or {}).get("selection", {}))
    if config is None and not sel:
        raise ConfigError("say how to select: --by SCORE --budget N, --rule, --method, or --config")
    if config is None and "method" not in sel:
        sel["method"] = "topk" if "order_by" in sel else "rule"
    # Without a file the flags are the whole selection: no default rule sneaks in.
    cfg = load_select_config(config, set_, {"selection": sel} if sel else {})
    res = select_file(scored, out, cfg.selection, config_for_manifest=cfg)
    typer.echo(f"{res.summary['input']} in, {len(res.selected)} selected, {len(res.not_selected)} not "
               f"selected -> {out}")
