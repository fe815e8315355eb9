"""CLI verbs `cache info` and `cache prune`: what the caches hold, and shrinking them."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

PATHS = typer.Argument(None, help="cache files or folders holding them (a run folder); "
                                  "default: the user cache ($SFTFLOW_CACHE or ~/.cache/sftflow)")


def _caches(paths: Optional[list[Path]]) -> list[Path]:
    from ..io.caches import find_caches
    from ..models import cache_dir
    return find_caches(list(paths) if paths else [cache_dir()])


def info_cmd(paths: Optional[list[Path]] = PATHS):
    """Size and rows of each cache."""
    from ..io.caches import cache_info
    found = _caches(paths)
    if not found:
        typer.echo("no caches found")
    for p in found:
        i = cache_info(p)
        rows = ", ".join(f"{t}: {n}" for t, n in i.rows.items()) or "empty"
        typer.echo(f"{p}  {i.bytes / 1e6:.2f} MB  ({rows})")


def prune_cmd(paths: Optional[list[Path]] = PATHS,
              max_mb: Optional[float] = typer.Option(None, "--max-mb", min=0,
                                                     help="remove the oldest rows until each file fits"),
              older_than_days: Optional[float] = typer.Option(None, "--older-than-days", min=0,
                                                              help="remove rows created before then"),
              legacy: bool = typer.Option(False, "--legacy",
                                          help="only remove rows older sftflow versions left behind "
                                               "(done by every prune)")):
    """Shrink caches (a removed row is only computed again when next needed)."""
    from ..io.caches import file_bytes, prune_legacy, prune_older_than, prune_to_size
    if max_mb is None and older_than_days is None and not legacy:
        raise typer.BadParameter("give --max-mb and/or --older-than-days (or --legacy)")
    for p in _caches(paths):
        before = file_bytes(p)
        removed = prune_legacy(p)
        if older_than_days is not None:
            removed += prune_older_than(p, older_than_days)
        if max_mb is not None:
            removed += prune_to_size(p, int(max_mb * 1e6))
        typer.echo(f"{p}: {removed} rows removed, {before / 1e6:.2f} -> {file_bytes(p) / 1e6:.2f} MB")
