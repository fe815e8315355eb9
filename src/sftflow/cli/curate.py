"""CLI verbs of the curate stage: curate, stats, check-leak, mix."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..config import ConfigError
from ..curate.config import CurateConfig, LeakageParams
from .flags import ENGINE_NAMES, config_flags, with_flags
from .options import QUIET, config_option, model_option, out_option, set_option, stage_config

# Every step's parameters, as --STEP-PARAM (e.g. --near-dedup-threshold 0.8).
CURATE_FLAGS = config_flags(CurateConfig, names=ENGINE_NAMES)
LEAK_FLAGS = config_flags(LeakageParams, names={"eval": ("--eval",)})


def load_curate_config(recipe: Path | None, overrides: list[str] | None, given: dict | None = None
                       ) -> CurateConfig:
    """A curate config from a YAML file (a bare curate section or a whole recipe), flags, then --set."""
    return stage_config(CurateConfig, recipe, "curate", given or {}, overrides, "curate config")


@with_flags(CURATE_FLAGS)
def curate_cmd(
    inputs: list[Path] = typer.Argument(..., help="training files (any supported format)"),
    out: Path = out_option(),
    config: Optional[Path] = config_option("--recipe"),
    set_: Optional[list[str]] = set_option("near_dedup.threshold=0.8"),
    eval_: Optional[list[Path]] = typer.Option(None, "--eval", help="evaluation files: adds the leakage "
                                               "step against them (sets leakage.eval)"),
    fmt: str = typer.Option("auto", "--format", help="input format"),
    quiet: bool = QUIET,
    given: dict | None = None,
):
    """Filter, deduplicate and check a pool; writes kept/rejected/manifest/stats into OUT."""
    from ..curate.pipeline import curate
    cfg = load_curate_config(config, set_, given)
    # Counts only: the records are in OUT, and holding them would undo the streaming run.
    res = curate(inputs, out, cfg, fmt=fmt, model=cfg.model, eval_paths=eval_, progress=not quiet, collect=False)
    typer.echo(f"{res.n_input} in, {res.kept_count} kept, {res.rejected_count} rejected -> {out}")


def stats_cmd(
    data: list[Path] = typer.Argument(..., help="data files"),
    out: Optional[Path] = out_option(None, "folder for stats.json and plots"),
    model: Optional[str] = model_option("tokenizer for token lengths"),
    embed: str = typer.Option("tfidf", "--embed", help="cluster view: tfidf, sbert or none"),
    fmt: str = typer.Option("auto", "--format"),
):
    """Counts, token lengths, task types and diversity, duplicates and refusals of a dataset."""
    import json
    from ..curate.describe import compute_stats, print_summary, write_stats
    from ..io import read_examples
    if embed not in ("tfidf", "sbert", "none"):
        raise ConfigError(f"--embed must be tfidf, sbert or none, got {embed!r}")
    res = read_examples(data, fmt, skip_invalid=True)
    if res.rejected:
        typer.secho(f"warning: {len(res.rejected)} unreadable records skipped; first: "
                    f"{res.rejected[0].reason}", fg="yellow", err=True)
    stats = compute_stats(res.examples, model=model, embed_method=embed)
    print_summary(stats)
    if out is not None:
        typer.echo(f"wrote {write_stats(stats, out)}")
    else:
        typer.echo(json.dumps({k: v for k, v in stats.items() if not k.startswith("_")}, indent=2))


@with_flags(LEAK_FLAGS)
def check_leak_cmd(
    train: list[Path] = typer.Argument(..., help="training files"),
    out: Optional[Path] = out_option(None, "write the report as JSON"),
    given: dict | None = None,
):
    """Report training records that overlap evaluation records; exit 1 when any do."""
    import json

    from rich.console import Console
    from rich.table import Table

    from ..curate.contamination import find_leaks
    from ..io import load_examples
    params = stage_config(LeakageParams, None, "leakage", given or {}, None, "check-leak")
    if not params.eval:
        raise ConfigError("check-leak needs the evaluation files: --eval FILE")
    report = find_leaks(load_examples(train), load_examples(params.eval), params)
    summary = report.summary()
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"summary": summary, "leaks": [lk.to_dict() for lk in report.leaks]},
                                  indent=2) + "\n")
    if report.leaks:
        t = Table("train id", "eval id", "kind", "value", title=f"{len(report.leaked_train)} leaked")
        for lk in report.leaks[:50]:
            t.add_row(lk.train_id, lk.eval_id, lk.kind, str(lk.value))
        Console(stderr=True).print(t)
    typer.echo(json.dumps(summary))
    raise typer.Exit(1 if report.leaks else 0)


def mix_cmd(
    sources: list[str] = typer.Argument(..., help="FILE[:WEIGHT] per source"),
    total: int = typer.Option(..., "--total", help="records in the mix"),
    out: Path = out_option(help="output JSONL"),
    seed: int = typer.Option(0, "--seed"),
):
    """Mix sources to target proportions and an exact total (upsampling is reported)."""
    from ..curate.mix import create_balanced_sft_mix, parse_source_spec
    from ..io import load_examples, write_examples, write_manifest
    pools, weights, paths = {}, {}, []
    for spec in sources:
        path, w = parse_source_spec(spec)
        name = Path(path).stem
        if name in pools:
            name = path
        pools[name] = load_examples(path)
        weights[name] = w
        paths.append(path)
    mixed, report = create_balanced_sft_mix(pools, weights, total, seed=seed)
    for w in report.warnings:
        typer.secho(f"warning: {w}", fg="yellow", err=True)
    write_examples(out, mixed)
    # The manifest sits beside the output as <name>.manifest.json, so several mixes
    # can share a folder without overwriting each other's record of how they were made.
    tmp = out.parent / f".{out.stem}.manifest"
    m = write_manifest(tmp, stage="mix", inputs=paths,
                       config={"proportions": weights, "total": total, "seed": seed},
                       counts={"per_source": report.per_source, "total": len(mixed)},
                       extra={"warnings": report.warnings, "output": str(out)})
    m.replace(out.parent / f"{out.stem}.manifest.json")
    tmp.rmdir()
    typer.echo(f"{len(mixed)} records -> {out}")
