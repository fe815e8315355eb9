"""CLI verbs of the curate stage: curate, stats, check-leak, mix."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..config import ConfigError, apply_overrides, load_yaml, validate
from .config import CurateConfig, LeakageParams


def load_curate_config(recipe: Path | None, overrides: list[str] | None) -> CurateConfig:
    """A curate config from a YAML file (a bare curate section or a whole recipe) plus --set."""
    data: dict = {}
    source = "curate config"
    if recipe is not None:
        raw = load_yaml(recipe)
        # A full recipe carries the stage under 'curate:'; a curate file is the section itself.
        data = dict(raw.get("curate") or {}) if "curate" in raw else raw
        source = str(recipe)
    apply_overrides(data, overrides)
    return validate(CurateConfig, data, source)


def register(app: typer.Typer) -> None:
    @app.command("curate")
    def curate_cmd(
        inputs: list[Path] = typer.Argument(..., help="training files (any supported format)"),
        out: Path = typer.Option(..., "-o", "--out", help="output folder"),
        recipe: Optional[Path] = typer.Option(None, "--recipe", help="YAML with the curate steps"),
        set_: Optional[list[str]] = typer.Option(None, "--set", help="override: step.param=value"),
        eval_: Optional[list[Path]] = typer.Option(None, "--eval", help="evaluation files: remove leaks"),
        fmt: str = typer.Option("auto", "--format", help="input format"),
        model: Optional[str] = typer.Option(None, "--model", help="tokenizer for token lengths"),
        quiet: bool = typer.Option(False, "--quiet", help="no progress or summary"),
    ):
        """Filter, deduplicate and check a pool; writes kept/rejected/manifest/stats into OUT."""
        from .pipeline import curate
        cfg = load_curate_config(recipe, set_)
        res = curate(inputs, out, cfg, fmt=fmt, model=model, eval_paths=eval_, progress=not quiet)
        typer.echo(f"{res.n_input} in, {len(res.kept)} kept, {len(res.rejected)} rejected -> {out}")

    @app.command("stats")
    def stats_cmd(
        data: list[Path] = typer.Argument(..., help="data files"),
        out: Optional[Path] = typer.Option(None, "-o", "--out", help="folder for stats.json and plots"),
        model: Optional[str] = typer.Option(None, "--model", help="tokenizer for token lengths"),
        embed: str = typer.Option("tfidf", "--embed", help="cluster view: tfidf, sbert or none"),
        fmt: str = typer.Option("auto", "--format"),
    ):
        """Counts, token lengths, task types and diversity, duplicates and refusals of a dataset."""
        import json
        from ..io import read_examples
        from .describe import compute_stats, print_summary, write_stats
        if embed not in ("tfidf", "sbert", "none"):
            raise ConfigError(f"--embed must be tfidf, sbert or none, got {embed!r}")
        res = read_examples(data, fmt, skip_invalid=True)
        if res.rejected:
            typer.secho(f"warning: {len(res.rejected)} unreadable records skipped; first: "
                        f"{res.rejected[0].reason}", fg="yellow", err=True)
        stats = compute_stats(res.examples, model=model, embed_method=embed)
        print_summary(stats)
        if out is not None:
            path = write_stats(stats, out)
            typer.echo(f"wrote {path}")
        else:
            typer.echo(json.dumps({k: v for k, v in stats.items() if not k.startswith("_")}, indent=2))

    @app.command("check-leak")
    def check_leak_cmd(
        train: list[Path] = typer.Argument(..., help="training files"),
        eval_: list[Path] = typer.Option(..., "--eval", help="evaluation files"),
        field: str = typer.Option("prompt", "--field", help="prompt, response or conversation"),
        ngram: int = typer.Option(13, "--ngram", help="shared word n-gram size that counts as overlap"),
        minhash_threshold: float = typer.Option(0.6, "--minhash-threshold",
                                                help="Jaccard on word 5-grams; 1 disables"),
        out: Optional[Path] = typer.Option(None, "-o", "--out", help="write the report as JSON"),
    ):
        """Report training records that overlap evaluation records; exit 1 when any do."""
        import json
        from rich.console import Console
        from rich.table import Table
        from ..io import load_examples
        from .contamination import find_leaks
        params = validate(LeakageParams, {"field": field, "ngram": ngram,
                                          "minhash_threshold": minhash_threshold}, "check-leak")
        report = find_leaks(load_examples(train), load_examples(eval_), params)
        summary = report.summary()
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps({"summary": summary, "leaks": [lk.to_dict() for lk in report.leaks]},
                                      indent=2) + "\n")
        console = Console(stderr=True)
        if report.leaks:
            t = Table("train id", "eval id", "kind", "value", title=f"{len(report.leaked_train)} leaked")
            for lk in report.leaks[:50]:
                t.add_row(lk.train_id, lk.eval_id, lk.kind, str(lk.value))
            console.print(t)
        typer.echo(json.dumps(summary))
        raise typer.Exit(1 if report.leaks else 0)

    @app.command("mix")
    def mix_cmd(
        sources: list[str] = typer.Argument(..., help="FILE[:WEIGHT] per source"),
        total: int = typer.Option(..., "--total", help="records in the mix"),
        out: Path = typer.Option(..., "-o", "--out", help="output JSONL"),
        seed: int = typer.Option(0, "--seed"),
    ):
        """Mix sources to target proportions and an exact total (upsampling is reported)."""
        from ..io import load_examples, write_examples, write_manifest
        from .mix import create_balanced_sft_mix, parse_source_spec
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
