"""CLI verb ``report``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report_cmd(
        run_dir: Path = typer.Argument(..., help="a run folder (or an eval output folder)"),
        out: Optional[Path] = typer.Option(None, "-o", "--out", help="HTML path; default RUN_DIR/report.html"),
        title: Optional[str] = typer.Option(None, "--title"),
    ):
        """Write one self-contained HTML report for a run and print its path."""
        from .build import build_report
        from .config import ReportConfig

        path = build_report(run_dir, ReportConfig(title=title), out)
        typer.echo(str(path))
